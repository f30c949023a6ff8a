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
//!
//! Eviction is a little work on every insertion, never a sweep: the
//! digests are also kept ordered by `exp`, and an insertion drops at most
//! [`EXPIRED_PER_INSERT`] expired entries, then, while the cache is full,
//! the entry closest to expiry (expired ones sort first), as the verifier
//! library's cache does. A sweep of the whole cache when it filled held
//! the lock, and the core, for about a millisecond once every 2 048 new
//! tokens past the bound.

use crate::tokens::access::AccessClaims;
use std::collections::{BTreeSet, HashMap};
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::{Arc, Mutex};

/// The most tokens kept; a few KiB each at most, so a few tens of MiB.
pub const CAPACITY: usize = 16_384;

/// The most expired entries one insertion drops beyond the room it needs:
/// enough to keep up with tokens expiring as fast as new ones arrive, few
/// enough that no insertion pays for a crowd.
pub const EXPIRED_PER_INSERT: usize = 8;

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
    entries: Mutex<Entries>,
}

struct Entries {
    by_digest: HashMap<Digest, Arc<Verified>, BuildHasherDefault<DigestHasher>>,
    /// The same digests, ordered by their token's `exp`.
    by_expiry: BTreeSet<(i64, Digest)>,
}

impl Default for Entries {
    /// The map is sized for the bound at once, so filling the cache never
    /// stops to rehash it (its pages are touched only as entries arrive).
    fn default() -> Self {
        Self { by_digest: HashMap::with_capacity_and_hasher(CAPACITY, Default::default()), by_expiry: BTreeSet::new() }
    }
}

impl Entries {
    fn remove(&mut self, digest: &Digest) -> Option<Arc<Verified>> {
        let entry = self.by_digest.remove(digest)?;
        self.by_expiry.remove(&(entry.claims.exp, *digest));
        Some(entry)
    }

    /// Drop the entry closest to expiry, if `also` says so of it.
    fn drop_first_if(&mut self, also: impl Fn(i64) -> bool) -> bool {
        match self.by_expiry.first() {
            Some(&(exp, digest)) if also(exp) => {
                self.by_expiry.pop_first();
                self.by_digest.remove(&digest);
                true
            }
            _ => false,
        }
    }
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
        self.lock().by_digest.get(digest).cloned()
    }

    /// Keep a verified token. Entries whose `exp` is at or before
    /// `expired_before` go first (a few per call), then, while the cache
    /// is full, the one closest to expiry.
    pub fn insert(&self, digest: Digest, verified: Arc<Verified>, expired_before: i64) {
        let mut entries = self.lock();
        entries.remove(&digest);
        for _ in 0..EXPIRED_PER_INSERT {
            if !entries.drop_first_if(|exp| exp <= expired_before) {
                break;
            }
        }
        while entries.by_digest.len() >= CAPACITY && entries.drop_first_if(|_| true) {}
        entries.by_expiry.insert((verified.claims.exp, digest));
        entries.by_digest.insert(digest, verified);
    }

    /// Forget a token (it expired, or its key is no longer trusted).
    pub fn remove(&self, digest: &Digest) {
        self.lock().remove(digest);
    }

    pub fn len(&self) -> usize {
        self.lock().by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
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
        // One insertion drops a few expired entries, not all of them.
        cache.insert(VerifiedTokens::digest("new"), verified(1000), 100);
        assert_eq!(cache.len(), CAPACITY + 1 - EXPIRED_PER_INSERT);
        // Live entries until the cache is full of live ones: the expired
        // half makes the room, the live half stays.
        for i in 0..CAPACITY / 2 - 1 {
            cache.insert(VerifiedTokens::digest(&format!("more-{i}")), verified(1000), 100);
            assert!(cache.len() <= CAPACITY);
        }
        assert_eq!(cache.len(), CAPACITY, "full again");
        for i in 0..CAPACITY {
            let kept = cache.get(&VerifiedTokens::digest(&i.to_string())).is_some();
            assert_eq!(kept, i % 2 == 1, "entry {i}: the expired went, the live stayed");
        }
        // Full of live entries: the one closest to expiry makes room.
        cache.insert(VerifiedTokens::digest("soonest"), verified(500), 100);
        cache.insert(VerifiedTokens::digest("later"), verified(2000), 100);
        assert!(cache.get(&VerifiedTokens::digest("soonest")).is_none(), "the entry closest to expiry went first");
        assert!(cache.get(&VerifiedTokens::digest("later")).is_some());
        for i in 0..CAPACITY * 2 {
            cache.insert(VerifiedTokens::digest(&format!("live-{i}")), verified(1000), 100);
            assert!(cache.len() <= CAPACITY);
        }
        assert!(cache.get(&VerifiedTokens::digest(&format!("live-{}", CAPACITY * 2 - 1))).is_some(), "the newest is kept");
        assert!(cache.get(&VerifiedTokens::digest("later")).is_some(), "the latest expiry outlives the crowd");
        // Removing keeps both indexes in step: the digest can come back.
        cache.remove(&VerifiedTokens::digest("later"));
        assert!(cache.get(&VerifiedTokens::digest("later")).is_none());
        cache.insert(VerifiedTokens::digest("later"), verified(2000), 100);
        assert!(cache.get(&VerifiedTokens::digest("later")).is_some());
        assert!(cache.len() <= CAPACITY);
    }

    #[test]
    fn the_same_digest_inserted_twice_is_one_entry() {
        let cache = VerifiedTokens::default();
        let digest = VerifiedTokens::digest("a.b.c");
        cache.insert(digest, verified(100), 0);
        cache.insert(digest, verified(200), 0);
        assert_eq!(cache.len(), 1);
        assert_eq!(cache.lock().by_expiry.len(), 1, "no stale ordering entry is left behind");
        assert_eq!(cache.get(&digest).unwrap().claims.exp, 200);
    }
}
