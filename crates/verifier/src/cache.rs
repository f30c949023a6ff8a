//! The verified-token cache: a service that is sent the same access token
//! on many requests pays a hash and a lookup for it, not a signature check.
//!
//! What is remembered. An entry is the outcome of the checks that need the
//! signature ([`token::verify_signed_claims`]): the decoded claims and the
//! kid of the key that verified them, keyed by the SHA-256 of the whole
//! compact token (the token itself is not kept), until the token's `exp`
//! plus the leeway. Only a token that passed every check is entered, so
//! refused tokens — garbage included — never take room.
//!
//! What is checked anyway. On every call, hit or not, the checks whose
//! answer can change run again ([`token::check_claims`], the very ones an
//! uncached token gets): issuer and audience, `exp`, `nbf` and `iat` against
//! the current time with the leeway, and the revocation list (`jti`, `sid`,
//! `sub`, the kid, the global not-before). An entry that fails one is
//! dropped. Checks on the request, such as a DPoP proof, are not the
//! token's: the caller makes them after this, every time.
//!
//! The key. An entry holds the JWKS it was verified against and is trusted
//! only while that very set is the current one. The set is replaced only
//! when a fetch brings a new document (a 304 keeps it); after a replacement
//! the token is verified afresh, so a key withdrawn from the JWKS fails its
//! tokens exactly as it fails uncached ones, and a token that still
//! verifies is entered again.
//!
//! Bounds. At most `capacity` entries, split over up to [`MAX_SHARDS`]
//! shards of at least [`MIN_PER_SHARD`], each behind its own mutex and
//! chosen by the hash's first byte, so that threads verifying different
//! tokens rarely meet. A full shard drops its expired entries, then the
//! entry closest to expiry: a map and an ordered set, O(log n) per change.
//! A lookup holds its shard's lock for a map read and a pointer copy; the
//! claims are checked and cloned after it is released.

use super::claims::Claims;
use super::revocations::RevocationMirror;
use super::token::{self, Policy, SignedClaims, VerifyError};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tessera_jose::{CompactJws, KeySet};

/// The most shards a cache is split into…
const MAX_SHARDS: usize = 16;
/// …and the fewest entries each holds, so a small cache is one shard and
/// evicts exactly the entry closest to expiry.
const MIN_PER_SHARD: usize = 64;

/// SHA-256 of a compact token.
type TokenHash = [u8; 32];

/// How the verified-token cache has been used; from
/// [`Verifier::verified_cache_stats`](crate::Verifier::verified_cache_stats).
///
/// Non-exhaustive: a later version may count more.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct VerifiedCacheStats {
    /// The most tokens held at once; 0 when the cache is off.
    pub capacity: usize,
    /// Tokens held now.
    pub entries: usize,
    /// Verifications answered from the cache, without checking the
    /// signature (the other checks ran, and may have refused the token).
    pub hits: u64,
    /// Verifications that checked the signature: the token was not held,
    /// or the JWKS has changed since it was.
    pub misses: u64,
}

/// One verified token.
struct Entry {
    signed: SignedClaims,
    /// The key set the signature was verified against.
    keys: Arc<KeySet>,
    /// The instant from which the token fails the time check: `exp` plus
    /// the leeway.
    until: i64,
}

/// A share of the entries, behind one mutex.
struct Shard {
    capacity: usize,
    entries: HashMap<TokenHash, Arc<Entry>>,
    /// The same hashes, ordered by `until`: the expired ones first.
    by_expiry: BTreeSet<(i64, TokenHash)>,
}

impl Shard {
    fn new(capacity: usize) -> Self {
        Self { capacity, entries: HashMap::new(), by_expiry: BTreeSet::new() }
    }

    /// Hold `entry` under `hash`, replacing what was there; expired entries
    /// go first, then, while the shard is full, those closest to expiry.
    fn insert(&mut self, hash: TokenHash, entry: Entry, now: i64) {
        self.remove(&hash);
        while self.by_expiry.first().is_some_and(|(until, _)| *until <= now) || self.entries.len() >= self.capacity {
            let Some((_, evicted)) = self.by_expiry.pop_first() else { break };
            self.entries.remove(&evicted);
        }
        self.by_expiry.insert((entry.until, hash));
        self.entries.insert(hash, Arc::new(entry));
    }

    fn remove(&mut self, hash: &TokenHash) {
        if let Some(entry) = self.entries.remove(hash) {
            self.by_expiry.remove(&(entry.until, *hash));
        }
    }
}

/// The tokens that passed every check, by hash; see the module header.
pub(crate) struct VerifiedTokens {
    shards: Box<[Mutex<Shard>]>,
    hits: AtomicU64,
    misses: AtomicU64,
}

impl VerifiedTokens {
    /// A cache of at most `capacity` tokens; none when it is 0.
    pub fn new(capacity: usize) -> Option<Self> {
        if capacity == 0 {
            return None;
        }
        let count = (capacity / MIN_PER_SHARD).clamp(1, MAX_SHARDS);
        let shards = (0..count).map(|index| Mutex::new(Shard::new(capacity / count + usize::from(index < capacity % count)))).collect();
        Some(Self { shards, hits: AtomicU64::new(0), misses: AtomicU64::new(0) })
    }

    /// Every check on `token`, as [`token::check_access_token`] makes them,
    /// with the same outcome; the signature's only when the token is not
    /// held under the current `keys`.
    pub fn check(
        &self,
        token: &str,
        keys: &Arc<KeySet>,
        policy: &Policy,
        revocations: Option<&RevocationMirror>,
        now: i64,
    ) -> Result<Claims, VerifyError> {
        if token.len() > CompactJws::MAX_BYTES {
            // Refused as malformed before anything else: not worth a hash.
            return token::check_access_token(token, keys, policy, revocations, now);
        }
        let hash = sha256(token);
        let shard = &self.shards[usize::from(hash[0]) % self.shards.len()];
        let held = lock(shard).entries.get(&hash).cloned();
        let stale = match held {
            Some(entry) if Arc::ptr_eq(&entry.keys, keys) => {
                self.hits.fetch_add(1, Ordering::Relaxed);
                return match token::check_claims(&entry.signed, policy, revocations, now) {
                    Ok(()) => Ok(entry.signed.claims.clone()),
                    Err(refused) => {
                        lock(shard).remove(&hash);
                        Err(refused)
                    }
                };
            }
            held => held.is_some(),
        };
        self.misses.fetch_add(1, Ordering::Relaxed);
        let outcome = token::verify_signed_claims(token, keys, policy)
            .and_then(|signed| token::check_claims(&signed, policy, revocations, now).map(|()| signed));
        match outcome {
            Ok(signed) => {
                let claims = signed.claims.clone();
                let until = claims.exp.saturating_add(policy.leeway_seconds);
                lock(shard).insert(hash, Entry { signed, keys: keys.clone(), until }, now);
                Ok(claims)
            }
            Err(refused) => {
                if stale {
                    lock(shard).remove(&hash);
                }
                Err(refused)
            }
        }
    }

    /// How full the cache is and how it has been used.
    pub fn stats(&self) -> VerifiedCacheStats {
        let mut stats = VerifiedCacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            ..VerifiedCacheStats::default()
        };
        for shard in &self.shards {
            let shard = lock(shard);
            stats.capacity += shard.capacity;
            stats.entries += shard.entries.len();
        }
        stats
    }
}

fn sha256(token: &str) -> TokenHash {
    let mut hash = [0; 32];
    hash.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, token.as_bytes()).as_ref());
    hash
}

fn lock(shard: &Mutex<Shard>) -> MutexGuard<'_, Shard> {
    shard.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
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
}
