//! DPoP at a resource server (RFC 9449 §7): an access token bound to a key
//! (`cnf.jkt`) is accepted only with a fresh proof by that key, made for
//! this request and this token, and used once.
//!
//! The proof format and its checks are tessera-jose's ([`Proof`]), the
//! same code the token service checks proofs with. What is the resource
//! server's own lives here: the policy (algorithms, how old a proof may
//! be, optional nonces) and the replay cache — `jti`s seen, each kept only
//! as long as its proof could still pass the age check, at most
//! `capacity` of them. When the cache is full of live entries the request
//! is refused (503) rather than an entry dropped: forgetting a `jti` early
//! would let its proof be replayed.
//!
//! Checks, in order, after the token itself verified: the token is bound;
//! the proof verifies with its own key under an allowed algorithm; `htm`
//! and `htu` are the request's, `iat` is inside the window, `ath` hashes
//! the token; the proof's key is the one the token is bound to; the nonce,
//! when required, is current; and the `jti` is new. The cache is touched
//! last, so refused requests never fill it.

use super::claims::Claims;
use super::token::VerifyError;
use std::collections::{BTreeSet, HashSet};
use std::sync::Mutex;
use tessera_jose::Algorithm;
use tessera_jose::dpop::{NonceKey, NonceStatus, Proof};

/// How proofs are judged.
pub(crate) struct DpopPolicy {
    pub algorithms: Vec<Algorithm>,
    /// Seconds a proof stays acceptable after its `iat`.
    pub max_age: i64,
    /// Seconds a proof's `iat` may lie in the future (clock skew).
    pub leeway: i64,
    /// When set, every proof must carry a nonce this key issued.
    pub nonces: Option<NonceKey>,
    pub replay: ReplayCache,
}

impl DpopPolicy {
    /// Every check on a DPoP request whose token verified as `claims`.
    pub(crate) fn check(&self, claims: &Claims, token: &str, proof: &str, method: &str, uri: &str, now: i64) -> Result<(), VerifyError> {
        let jkt = claims.bound_key().ok_or(VerifyError::NotBound)?;
        let proof = Proof::verify(proof, &self.algorithms)?;
        proof.check_request(method, uri)?;
        proof.check_time(now, self.max_age, self.leeway)?;
        proof.check_access_token(token)?;
        if proof.jkt() != jkt {
            return Err(VerifyError::KeyMismatch);
        }
        if let Some(nonces) = &self.nonces
            && nonces.check(proof.claims().nonce.as_deref(), now) == NonceStatus::Invalid
        {
            return Err(VerifyError::NonceRequired { nonce: nonces.issue(now) });
        }
        let until = proof.acceptable_until(self.max_age).max(now);
        self.replay.remember(format!("{jkt}.{}", proof.claims().jti), until, now)
    }

    /// A nonce to hand the client, when nonces are required.
    pub(crate) fn nonce(&self, now: i64) -> Option<String> {
        self.nonces.as_ref().map(|nonces| nonces.issue(now))
    }
}

/// The `jti`s of accepted proofs, each until its proof has aged out.
pub(crate) struct ReplayCache {
    capacity: usize,
    seen: Mutex<Seen>,
}

#[derive(Default)]
struct Seen {
    keys: HashSet<String>,
    /// The same keys ordered by the instant they may be forgotten.
    by_expiry: BTreeSet<(i64, String)>,
}

impl ReplayCache {
    pub(crate) fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), seen: Mutex::new(Seen::default()) }
    }

    /// Record `key` until `until`: refused if it is already there, or if
    /// the cache is full of entries still live at `now`.
    pub(crate) fn remember(&self, key: String, until: i64, now: i64) -> Result<(), VerifyError> {
        let mut seen = self.seen.lock().unwrap_or_else(|e| e.into_inner());
        while let Some(first) = seen.by_expiry.first().filter(|(expiry, _)| *expiry < now).cloned() {
            seen.by_expiry.remove(&first);
            seen.keys.remove(&first.1);
        }
        if seen.keys.contains(&key) {
            return Err(VerifyError::ProofReplayed);
        }
        if seen.keys.len() >= self.capacity {
            return Err(VerifyError::ReplayCacheFull);
        }
        seen.keys.insert(key.clone());
        seen.by_expiry.insert((until, key));
        Ok(())
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.seen.lock().unwrap().keys.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tessera_jose::KeyPair;
    use tessera_jose::dpop::{ProofClaims, sign_proof};

    const NOW: i64 = 1_800_000_000;
    const URI: &str = "https://api.example.com/orders";
    const TOKEN: &str = "the.access.token";

    fn pair() -> KeyPair {
        KeyPair::from_pkcs8(Algorithm::ES256, &KeyPair::generate_pkcs8(Algorithm::ES256).unwrap()).unwrap()
    }

    fn policy(nonces: Option<NonceKey>, capacity: usize) -> DpopPolicy {
        DpopPolicy { algorithms: Algorithm::ALL.to_vec(), max_age: 60, leeway: 5, nonces, replay: ReplayCache::new(capacity) }
    }

    fn claims_bound_to(jkt: Option<&str>) -> Claims {
        let mut claims = json!({"iss": "i", "sub": "alice", "aud": "api", "exp": NOW + 600, "iat": NOW, "jti": "t", "client_id": "web"});
        if let Some(jkt) = jkt {
            claims["cnf"] = json!({"jkt": jkt});
        }
        serde_json::from_value(claims).unwrap()
    }

    fn proof(key: &KeyPair, jti: &str, nonce: Option<&str>) -> String {
        let claims = ProofClaims::new("GET", URI, jti, NOW).access_token(TOKEN);
        sign_proof(key, &if let Some(nonce) = nonce { claims.nonce(nonce) } else { claims })
    }

    #[test]
    fn a_fresh_proof_by_the_bound_key_passes_once() {
        let (key, policy) = (pair(), policy(None, 10));
        let claims = claims_bound_to(Some(&key.thumbprint()));
        assert_eq!(policy.check(&claims, TOKEN, &proof(&key, "p1", None), "GET", URI, NOW), Ok(()));
        assert_eq!(policy.check(&claims, TOKEN, &proof(&key, "p1", None), "GET", URI, NOW + 1), Err(VerifyError::ProofReplayed));
        assert_eq!(policy.check(&claims, TOKEN, &proof(&key, "p2", None), "GET", URI, NOW + 1), Ok(()));
    }

    #[test]
    fn the_token_must_be_bound_to_the_proofs_key_and_the_proof_must_fit_the_request() {
        let (key, other, policy) = (pair(), pair(), policy(None, 10));
        let claims = claims_bound_to(Some(&key.thumbprint()));
        let check =
            |claims: &Claims, proof: &str, token: &str, method: &str, now: i64| policy.check(claims, token, proof, method, URI, now);
        assert_eq!(check(&claims_bound_to(None), &proof(&key, "a", None), TOKEN, "GET", NOW), Err(VerifyError::NotBound));
        assert_eq!(check(&claims, &proof(&other, "b", None), TOKEN, "GET", NOW), Err(VerifyError::KeyMismatch));
        assert!(matches!(check(&claims, &proof(&key, "c", None), "another.token", "GET", NOW), Err(VerifyError::Proof(_))));
        assert!(matches!(check(&claims, &proof(&key, "d", None), TOKEN, "POST", NOW), Err(VerifyError::Proof(_))));
        assert!(matches!(check(&claims, &proof(&key, "e", None), TOKEN, "GET", NOW + 61), Err(VerifyError::Proof(_))));
        assert!(matches!(check(&claims, &proof(&key, "f", None), TOKEN, "GET", NOW - 6), Err(VerifyError::Proof(_))));
        // None of the refused proofs took a place in the cache.
        assert_eq!(policy.replay.len(), 0);
    }

    #[test]
    fn with_nonces_required_a_proof_without_a_current_one_is_answered_with_one() {
        let (key, nonces) = (pair(), NonceKey::new(&[1; 32], 60));
        let policy = policy(Some(nonces.clone()), 10);
        let claims = claims_bound_to(Some(&key.thumbprint()));
        let Err(VerifyError::NonceRequired { nonce }) = policy.check(&claims, TOKEN, &proof(&key, "a", None), "GET", URI, NOW) else {
            panic!("a nonce is required")
        };
        assert_eq!(
            policy.check(&claims, TOKEN, &proof(&key, "b", Some("made-up")), "GET", URI, NOW).unwrap_err(),
            VerifyError::NonceRequired { nonce: nonce.clone() }
        );
        assert_eq!(policy.check(&claims, TOKEN, &proof(&key, "c", Some(&nonce)), "GET", URI, NOW), Ok(()));
        assert_eq!(policy.nonce(NOW), Some(nonce));
    }

    #[test]
    fn the_cache_forgets_aged_out_proofs_and_refuses_when_full_of_live_ones() {
        let cache = ReplayCache::new(2);
        assert_eq!(cache.remember("a".into(), NOW + 60, NOW), Ok(()));
        assert_eq!(cache.remember("b".into(), NOW + 10, NOW), Ok(()));
        assert_eq!(cache.remember("c".into(), NOW + 60, NOW), Err(VerifyError::ReplayCacheFull));
        assert_eq!(cache.remember("a".into(), NOW + 60, NOW + 10), Err(VerifyError::ProofReplayed));
        // b may be forgotten after NOW + 10: its proof can no longer pass.
        assert_eq!(cache.remember("c".into(), NOW + 70, NOW + 11), Ok(()));
        assert_eq!(cache.len(), 2);
        assert_eq!(cache.remember("b".into(), NOW + 71, NOW + 11), Err(VerifyError::ReplayCacheFull));
    }
}
