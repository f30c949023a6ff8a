//! [`RevocationList`]: the in-memory mirror of the revocation list.
//!
//! Every check — refresh, introspection — is a lookup here, never a wait on
//! the store. The mirror is loaded from the store at start and updated after
//! every durable revocation (and, with a shared store, by a follower that
//! tails what other replicas write), so it can only lag the store.
//!
//! It also keeps the entries as an ordered log for the revocation feed, and
//! publishes them only up to a *watermark* below which nothing is missing, so
//! a feed follower that resumes after the watermark never skips an entry:
//!
//! - a local store numbers entries densely (1, 2, 3…), but concurrent
//!   writers may apply them out of order: the watermark advances over
//!   contiguous numbers only;
//! - a shared store's entries reach every replica in order through the
//!   store's stream: a replica's own writes take effect in the checks at once,
//!   but enter the feed when the stream delivers them, in order.
//!
//! The feed reads the log a page at a time ([`RevocationList::page`]) and
//! nothing copies the whole of it: a list of hundreds of thousands of
//! entries must not cost that much again per reader.

use super::{Covers, RevocationEntry, Revoked, TokenFacts};
use std::collections::{BTreeMap, HashMap};
use std::sync::RwLock;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;
use tokio::sync::broadcast;

/// The mirror's maps: their keys are ids tessera generated (or an
/// administrator chose) and every lookup hashes one, so a fast hasher,
/// seeded per process, rather than SipHash.
type Map<V> = HashMap<String, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
struct Mirror {
    tokens: Map<i64>,
    sessions: Map<i64>,
    /// subject → (revoked at or before this instant, entry expiry)
    subjects: Map<(i64, i64)>,
    keys: Map<i64>,
    /// The global not-before: (every token issued at or before this instant
    /// is dead, entry expiry).
    all_before: Option<(i64, i64)>,
    /// Every live entry by sequence number.
    log: BTreeMap<u64, RevocationEntry>,
    /// Everything up to here is present (or was purged after expiring).
    watermark: u64,
    /// Counts the changes to the published log other than appends past the
    /// watermark: purges, and entries filled in below it. A feed page below
    /// the watermark stays the same while this does not move.
    rewrites: u64,
}

/// One page of the feed: at most `limit` entries after a cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub entries: Vec<RevocationEntry>,
    /// Resume from here: the last entry's `seq` when more follow, else the
    /// watermark (which may lie past the last entry, over purged ones).
    pub cursor: u64,
    /// Whether entries follow this page.
    pub more: bool,
    /// The list's version when the page was read.
    pub version: Version,
}

/// What a page's content depends on: the watermark (for the last page)
/// and the count of rewrites (for every page).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Version {
    pub watermark: u64,
    pub rewrites: u64,
}

/// The revocation list as every check sees it.
#[derive(Debug)]
pub struct RevocationList {
    mirror: RwLock<Mirror>,
    /// Entries as they pass the watermark, for live feed subscribers.
    published: broadcast::Sender<RevocationEntry>,
    /// With a shared store: when the follower last heard from it (Unix ms).
    /// `None`: the store is local and every write passes through here.
    synced_at_ms: Option<AtomicI64>,
}

impl Default for RevocationList {
    fn default() -> Self {
        Self::new()
    }
}

impl RevocationList {
    /// A mirror of a local store: always current.
    pub fn new() -> Self {
        Self { mirror: RwLock::default(), published: broadcast::channel(4096).0, synced_at_ms: None }
    }

    /// A mirror of a shared store, current only while its follower reports in.
    pub fn followed() -> Self {
        Self { synced_at_ms: Some(AtomicI64::new(0)), ..Self::new() }
    }

    /// The follower heard from the store at `now_ms`.
    pub fn mark_synced(&self, now_ms: i64) {
        if let Some(synced) = &self.synced_at_ms {
            synced.store(now_ms, Ordering::Relaxed);
        }
    }

    /// Whether checks may trust the mirror at `now_ms`.
    pub fn is_fresh(&self, now_ms: i64, max_staleness: Duration) -> bool {
        match &self.synced_at_ms {
            None => true,
            Some(synced) => now_ms.saturating_sub(synced.load(Ordering::Relaxed)) <= max_staleness.as_millis() as i64,
        }
    }

    /// Load a complete snapshot (at start or after a reconnect), taken when
    /// the store's last sequence number was `last`: everything up to it is
    /// now known (entries below it that are missing have expired).
    pub fn load(&self, snapshot: &[RevocationEntry], last: u64) {
        let mut mirror = self.mirror.write().unwrap_or_else(|e| e.into_inner());
        for entry in snapshot {
            Self::record(&mut mirror, entry);
        }
        // Publish, in order, what the snapshot adds past the watermark (after
        // a reconnect, entries a live subscriber has not seen yet).
        let top = last.max(snapshot.iter().map(|e| e.seq).max().unwrap_or(0));
        if top > mirror.watermark {
            let fresh: Vec<RevocationEntry> = mirror.log.range(mirror.watermark + 1..=top).map(|(_, e)| e.clone()).collect();
            for entry in fresh {
                let _ = self.published.send(entry);
            }
            mirror.watermark = top;
        }
        self.advance(&mut mirror);
    }

    /// Add entries this process just wrote (idempotent, any order). They
    /// take effect in the checks at once.
    pub fn apply(&self, entries: &[RevocationEntry]) {
        let mut mirror = self.mirror.write().unwrap_or_else(|e| e.into_inner());
        let followed = self.synced_at_ms.is_some();
        for entry in entries {
            if followed {
                // The stream brings it into the feed, in order.
                Self::cover(&mut mirror, entry);
            } else {
                Self::record(&mut mirror, entry);
            }
        }
        self.advance(&mut mirror);
    }

    /// Add entries from a shared store's stream, which delivers them in
    /// order: each moves the watermark to its own number.
    pub fn follow(&self, entries: &[RevocationEntry]) {
        let mut mirror = self.mirror.write().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            if Self::record(&mut mirror, entry) && entry.seq > mirror.watermark {
                mirror.watermark = entry.seq;
                let _ = self.published.send(entry.clone());
            }
        }
    }

    /// Put an entry in the log and the lookup maps; false if it was there.
    fn record(mirror: &mut Mirror, entry: &RevocationEntry) -> bool {
        if mirror.log.contains_key(&entry.seq) {
            return false;
        }
        if entry.seq <= mirror.watermark {
            mirror.rewrites += 1;
        }
        Self::cover(mirror, entry);
        mirror.log.insert(entry.seq, entry.clone());
        true
    }

    /// Make the checks see an entry.
    fn cover(mirror: &mut Mirror, entry: &RevocationEntry) {
        let expires = entry.expires_at;
        match &entry.covers {
            Covers::Token { jti } => {
                mirror.tokens.insert(jti.clone(), expires);
            }
            Covers::Session { sid } => {
                mirror.sessions.insert(sid.clone(), expires);
            }
            Covers::Subject { sub, before } => {
                let slot = mirror.subjects.entry(sub.clone()).or_insert((*before, expires));
                *slot = (slot.0.max(*before), slot.1.max(expires));
            }
            Covers::Key { kid } => {
                mirror.keys.insert(kid.clone(), expires);
            }
            Covers::Before { before } => Self::cover_all_before(mirror, *before, expires),
        }
    }

    /// A later not-before moves the instant forward, never back.
    fn cover_all_before(mirror: &mut Mirror, before: i64, expires: i64) {
        let slot = mirror.all_before.get_or_insert((before, expires));
        *slot = (slot.0.max(before), slot.1.max(expires));
    }

    /// Whether a token issued at `iat` predates the global not-before.
    fn issued_before_all(mirror: &Mirror, iat: i64) -> bool {
        mirror.all_before.is_some_and(|(before, _)| iat <= before)
    }

    /// The global not-before in force, if any: every token issued at or
    /// before it is refused.
    pub fn not_before(&self) -> Option<i64> {
        self.mirror.read().unwrap_or_else(|e| e.into_inner()).all_before.map(|(before, _)| before)
    }

    /// Move the watermark over every entry now contiguous, publishing each.
    fn advance(&self, mirror: &mut Mirror) {
        loop {
            let next = mirror.watermark + 1;
            match mirror.log.get(&next) {
                Some(entry) => {
                    // An entry is copied for the live feed only when someone
                    // listens; no subscriber is not an error.
                    if self.published.receiver_count() > 0 {
                        let _ = self.published.send(entry.clone());
                    }
                    mirror.watermark = next;
                }
                None => break,
            }
        }
    }

    /// Whether signing key `kid` has been withdrawn.
    pub fn key_revoked(&self, kid: &str) -> bool {
        self.mirror.read().unwrap_or_else(|e| e.into_inner()).keys.contains_key(kid)
    }

    /// Whether any entry covers this token.
    pub fn check(&self, token: TokenFacts<'_>) -> Option<Revoked> {
        let mirror = self.mirror.read().unwrap_or_else(|e| e.into_inner());
        if token.jti.is_some_and(|jti| mirror.tokens.contains_key(jti)) {
            return Some(Revoked::Token);
        }
        if token.sid.is_some_and(|sid| mirror.sessions.contains_key(sid)) {
            return Some(Revoked::Session);
        }
        if mirror.subjects.get(token.sub).is_some_and(|(before, _)| token.iat <= *before) {
            return Some(Revoked::Subject);
        }
        if token.kid.is_some_and(|kid| mirror.keys.contains_key(kid)) {
            return Some(Revoked::Key);
        }
        if Self::issued_before_all(&mirror, token.iat) {
            return Some(Revoked::Before);
        }
        None
    }

    /// At most `limit` live entries after `cursor`, up to the watermark.
    /// Only the page is copied, under the read lock: a reader of a long
    /// list walks it page by page and never holds a copy of all of it.
    pub fn page(&self, cursor: u64, limit: usize) -> Page {
        let mirror = self.mirror.read().unwrap_or_else(|e| e.into_inner());
        let version = Version { watermark: mirror.watermark, rewrites: mirror.rewrites };
        if cursor >= mirror.watermark {
            return Page { entries: Vec::new(), cursor: mirror.watermark, more: false, version };
        }
        let mut range = mirror.log.range(cursor + 1..=mirror.watermark).map(|(_, e)| e);
        let entries: Vec<RevocationEntry> = range.by_ref().take(limit.max(1)).cloned().collect();
        let more = range.next().is_some();
        let cursor = match entries.last() {
            Some(last) if more => last.seq,
            _ => mirror.watermark,
        };
        Page { entries, cursor, more, version }
    }

    /// The list's version, for caches of its pages.
    pub fn version(&self) -> Version {
        let mirror = self.mirror.read().unwrap_or_else(|e| e.into_inner());
        Version { watermark: mirror.watermark, rewrites: mirror.rewrites }
    }

    /// A live feed: entries as they pass the watermark.
    pub fn subscribe(&self) -> broadcast::Receiver<RevocationEntry> {
        self.published.subscribe()
    }

    /// Drop entries that expired before `now`.
    pub fn purge(&self, now: i64) {
        let mut mirror = self.mirror.write().unwrap_or_else(|e| e.into_inner());
        mirror.tokens.retain(|_, e| *e >= now);
        mirror.sessions.retain(|_, e| *e >= now);
        mirror.subjects.retain(|_, (_, e)| *e >= now);
        mirror.keys.retain(|_, e| *e >= now);
        mirror.all_before = mirror.all_before.filter(|(_, e)| *e >= now);
        let before = mirror.log.len();
        mirror.log.retain(|_, e| e.expires_at >= now);
        if mirror.log.len() != before {
            mirror.rewrites += 1;
        }
    }

    /// The feed's current cursor.
    pub fn watermark(&self) -> u64 {
        self.mirror.read().unwrap_or_else(|e| e.into_inner()).watermark
    }

    /// Live entries, and an estimate of the memory they hold (the log
    /// and the lookup maps, keys and per-entry overhead included).
    pub fn footprint(&self) -> (usize, usize) {
        let mirror = self.mirror.read().unwrap_or_else(|e| e.into_inner());
        const PER_ENTRY: usize = 96;
        let text = |covers: &Covers| match covers {
            Covers::Token { jti } => jti.len(),
            Covers::Session { sid } => sid.len(),
            Covers::Subject { sub, .. } => sub.len(),
            Covers::Key { kid } => kid.len(),
            Covers::Before { .. } => 0,
        };
        let bytes = mirror.log.values().map(|entry| 2 * (PER_ENTRY + text(&entry.covers))).sum();
        (mirror.log.len(), bytes)
    }

    pub fn len(&self) -> usize {
        self.mirror.read().unwrap_or_else(|e| e.into_inner()).log.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
#[path = "list_tests.rs"]
mod tests;
