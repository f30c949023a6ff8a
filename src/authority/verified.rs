//! Access tokens this service has already verified, so a resource server
//! that introspects the same token again and again pays a hash and a
//! lookup instead of an ECDSA or EdDSA verification.
//!
//! The cache only saves the signature check and the parsing. What can
//! change while a token lives is checked on every call, hit or miss, by the
//! caller: the revocation list, the time claims against the clock, and that
//! the key which signed the token is still trusted (a key withdrawn with
//! `keys revoke` ends its cached tokens at once). Only tokens that verified
//! are stored, so garbage cannot fill the cache; it holds at most
//! [`CAPACITY`] entries, each kept no longer than its token's `exp`.
//! Entries are keyed by SHA-256 of the whole token: the token itself is not
//! kept as the key.

use crate::tokens::access::AccessClaims;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

/// The most tokens kept; a few KiB each at most, so a few tens of MiB.
pub const CAPACITY: usize = 16_384;

/// A token that verified, with the kid of the key that signed it.
#[derive(Debug)]
pub struct Verified {
    pub claims: AccessClaims,
    pub kid: String,
    /// The introspection answer while the token is active, written once
    /// when it verified: every member of it comes from the claims, so it
    /// is the same on every call that finds the token active.
    pub answer: bytes::Bytes,
}

/// The cache; cheap to share.
#[derive(Default)]
pub struct VerifiedTokens {
    entries: Mutex<HashMap<Digest, Arc<Verified>, BuildHasherDefault<DigestHasher>>>,
}

/// SHA-256 of a token.
pub type Digest = [u8; 32];

impl VerifiedTokens {
    /// The key a token is found under.
    pub fn digest(token: &str) -> Digest {
        let digest = ring::digest::digest(&ring::digest::SHA256, token.as_bytes());
        digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
    }

    pub fn get(&self, digest: &Digest) -> Option<Arc<Verified>> {
        self.lock().get(digest).cloned()
    }

    /// Keep a verified token. When full, the entries past `expired_before`
    /// go first; if none has, an eighth of the entries make room, so a
    /// full cache costs one sweep per many insertions, not one per call.
    pub fn insert(&self, digest: Digest, verified: Arc<Verified>, expired_before: i64) {
        let mut entries = self.lock();
        if entries.len() >= CAPACITY {
            entries.retain(|_, entry| entry.claims.exp > expired_before);
        }
        if entries.len() >= CAPACITY {
            let victims: Vec<Digest> = entries.keys().take(CAPACITY / 8).copied().collect();
            for victim in victims {
                entries.remove(&victim);
            }
        }
        entries.insert(digest, verified);
    }

    /// Forget a token (it expired, or its key is no longer trusted).
    pub fn remove(&self, digest: &Digest) {
        self.lock().remove(digest);
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Digest, Arc<Verified>, BuildHasherDefault<DigestHasher>>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The keys are SHA-256 digests, already uniform: the first eight bytes
/// are the hash. (Only tokens this service signed get in, so no one can
/// choose keys that collide.)
#[derive(Default)]
pub struct DigestHasher(u64);

impl Hasher for DigestHasher {
    fn write(&mut self, bytes: &[u8]) {
        // A `[u8; 32]` hashes as its length, then its bytes.
        if bytes.len() >= 8 {
            self.0 = u64::from_le_bytes(bytes[..8].try_into().expect("eight bytes"));
        }
    }

    fn write_usize(&mut self, _: usize) {}

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tokens::access::Audience;

    fn verified(exp: i64) -> Arc<Verified> {
        Arc::new(Verified {
            claims: AccessClaims {
                iss: "https://issuer.example".into(),
                sub: "alice".into(),
                aud: Audience::One("api".into()),
                exp,
                nbf: None,
                iat: 0,
                jti: "j".into(),
                client_id: "web".into(),
                scope: None,
                sid: None,
                auth_time: None,
                cnf: None,
                custom: serde_json::Map::new(),
            },
            kid: "k".into(),
            answer: bytes::Bytes::new(),
        })
    }

    #[test]
    fn a_token_is_found_by_its_digest_only() {
        let cache = VerifiedTokens::default();
        cache.insert(VerifiedTokens::digest("a.b.c"), verified(100), 0);
        assert!(cache.get(&VerifiedTokens::digest("a.b.c")).is_some());
        assert!(cache.get(&VerifiedTokens::digest("a.b.d")).is_none());
        cache.remove(&VerifiedTokens::digest("a.b.c"));
        assert!(cache.is_empty());
    }

    #[test]
    fn it_never_holds_more_than_its_capacity_and_drops_expired_entries_first() {
        let cache = VerifiedTokens::default();
        // Half the entries expired at 50, half live until 1000.
        for i in 0..CAPACITY {
            cache.insert(VerifiedTokens::digest(&i.to_string()), verified(if i % 2 == 0 { 50 } else { 1000 }), 0);
        }
        assert_eq!(cache.len(), CAPACITY);
        cache.insert(VerifiedTokens::digest("new"), verified(1000), 100);
        assert_eq!(cache.len(), CAPACITY / 2 + 1, "the expired half went, the live half stayed");
        assert!(cache.get(&VerifiedTokens::digest("1")).is_some());
        // Full of live entries: room is made, the bound holds.
        for i in 0..CAPACITY * 2 {
            cache.insert(VerifiedTokens::digest(&format!("live-{i}")), verified(1000), 100);
            assert!(cache.len() <= CAPACITY);
        }
        assert!(cache.get(&VerifiedTokens::digest(&format!("live-{}", CAPACITY * 2 - 1))).is_some(), "the newest is kept");
    }
}
