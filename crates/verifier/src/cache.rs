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
#[path = "cache_tests.rs"]
mod tests;
