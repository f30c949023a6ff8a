//! [`SignedPages`]: the feed's signed documents, each signed once per change
//! of the list rather than once per request.
//!
//! A document is asked for far more often than the list changes — every
//! verifier whose stream is down polls each second, caches and CDNs
//! revalidate — and signing one costs serialising up to a page of entries
//! plus a signature. So a signed page is kept, as shared bytes that every
//! response hands out without a copy, while it is still what a fresh
//! signature would say:
//!
//! - the list has not been rewritten (no purge, no entry filled in below the
//!   watermark) since — appends past the watermark leave a page that has
//!   `more` as it was, and change only the last page, so the last page is
//!   also tied to the watermark;
//! - the key that signed it is still the active one;
//! - it was signed less than [`REFRESH_SECONDS`] ago, so a page handed out
//!   stays good for most of its lifetime (`exp` = `iat` + 300 s).
//!
//! The cache is small and bounded — [`MAX_PAGES`] pages and [`MAX_BYTES`]
//! in all, the least recently used going first — so requests for many
//! different pages cost at most one page's signing each, as they would
//! without it. Misses are signed one at a time, and a miss checks the cache
//! again once it holds the signing turn: the many followers that ask for the
//! same new page right after a change cause one signature, not one each.
//! The turn is awaited, not blocked on, so requests queued behind a signing
//! leave the runtime's threads free for everything else.

use super::RevocationList;
use super::list::Version;
use crate::keys::KeyView;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Most pages kept.
pub const MAX_PAGES: usize = 64;
/// Most bytes of signed pages kept (a full page of 10 000 entries is about
/// 1.3 MB).
pub const MAX_BYTES: usize = 16 * 1024 * 1024;
/// A page signed longer ago than this is signed again.
pub const REFRESH_SECONDS: i64 = 60;

/// One signed page of the feed.
#[derive(Debug)]
pub struct SignedPage {
    pub after: u64,
    pub limit: usize,
    /// The compact JWS.
    pub body: Bytes,
    /// A weak validator naming the page's content, the same on every
    /// replica that holds the same entries.
    pub etag: String,
    /// Where the next page starts.
    pub cursor: u64,
    /// Whether a next page holds more entries.
    pub more: bool,
    version: Version,
    kid: String,
    signed_at: i64,
}

impl SignedPage {
    fn still_good(&self, version: Version, kid: &str, now: i64) -> bool {
        self.version.rewrites == version.rewrites
            && (self.more || self.version.watermark == version.watermark)
            && self.kid == kid
            && (self.signed_at..self.signed_at + REFRESH_SECONDS).contains(&now)
    }
}

/// The cache of signed pages.
#[derive(Debug, Default)]
pub struct SignedPages {
    /// Most recently used first.
    pages: Mutex<VecDeque<Arc<SignedPage>>>,
    /// Held while signing, so one change causes one signature per page.
    signing: tokio::sync::Mutex<()>,
    signatures: AtomicU64,
}

impl SignedPages {
    /// The page of at most `limit` entries after `after`, signed by the
    /// active key; `None` when no key is active.
    pub async fn get(
        &self,
        list: &RevocationList,
        keys: &KeyView,
        issuer: &str,
        after: u64,
        limit: usize,
        now: DateTime<Utc>,
    ) -> Option<Arc<SignedPage>> {
        let key = keys.active_signer(now)?;
        if let Some(hit) = self.lookup(after, limit, list.version(), &key.kid, now.timestamp()) {
            return Some(hit);
        }
        let _turn = self.signing.lock().await;
        if let Some(hit) = self.lookup(after, limit, list.version(), &key.kid, now.timestamp()) {
            return Some(hit);
        }
        let page = list.page(after, limit);
        let (cursor, more, version) = (page.cursor, page.more, page.version);
        let etag = format!("W/\"{after}.{limit}.{cursor}.{}.{}\"", page.entries.len(), u8::from(more));
        let body = Bytes::from(super::feed::sign(key, issuer, after, page, now));
        self.signatures.fetch_add(1, Ordering::Relaxed);
        let signed =
            Arc::new(SignedPage { after, limit, body, etag, cursor, more, version, kid: key.kid.clone(), signed_at: now.timestamp() });
        self.insert(signed.clone());
        Some(signed)
    }

    /// How many pages have been signed (each one a cache miss).
    pub fn signatures(&self) -> u64 {
        self.signatures.load(Ordering::Relaxed)
    }

    fn lookup(&self, after: u64, limit: usize, version: Version, kid: &str, now: i64) -> Option<Arc<SignedPage>> {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        let index = pages.iter().position(|page| page.after == after && page.limit == limit)?;
        let page = pages.remove(index)?;
        if !page.still_good(version, kid, now) {
            return None;
        }
        pages.push_front(page.clone());
        Some(page)
    }

    fn insert(&self, page: Arc<SignedPage>) {
        let mut pages = self.pages.lock().unwrap_or_else(|e| e.into_inner());
        pages.retain(|kept| !(kept.after == page.after && kept.limit == page.limit));
        pages.push_front(page);
        let mut bytes: usize = pages.iter().map(|kept| kept.body.len()).sum();
        // The page just signed stays even if it alone is over the budget.
        while pages.len() > MAX_PAGES || (bytes > MAX_BYTES && pages.len() > 1) {
            if let Some(evicted) = pages.pop_back() {
                bytes -= evicted.body.len();
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.pages.lock().unwrap().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keys::{KeyDirectory, Keyring, SigningAlgorithm, TokenLifetimes};
    use crate::revocations::{Covers, RevocationEntry};
    use std::time::Duration;

    struct Fixture {
        _dir: tempfile::TempDir,
        clock: Arc<ManualClock>,
        keyring: Keyring,
        list: RevocationList,
        pages: SignedPages,
    }

    fn fixture(entries: u64) -> Fixture {
        tessera_jose::jsonwebtoken_provider::install();
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        let directory = KeyDirectory::new(dir.path());
        directory.generate_signing(SigningAlgorithm::ES256, clock.now(), clock.now()).unwrap();
        let lifetimes = TokenLifetimes { access: Duration::from_secs(600), refresh: Duration::from_secs(600) };
        let keyring = Keyring::open(directory, lifetimes, clock.clone()).unwrap();
        let list = RevocationList::new();
        list.apply(&(1..=entries).map(entry).collect::<Vec<_>>());
        Fixture { _dir: dir, clock, keyring, list, pages: SignedPages::default() }
    }

    fn entry(seq: u64) -> RevocationEntry {
        RevocationEntry { seq, covers: Covers::Session { sid: format!("s{seq}") }, expires_at: 1_800_000_000 + seq as i64 }
    }

    impl Fixture {
        fn get(&self, after: u64, limit: usize) -> Arc<SignedPage> {
            let keys = self.keyring.view();
            let signed = self.pages.get(&self.list, &keys, "https://issuer.test", after, limit, self.clock.now());
            futures_util::FutureExt::now_or_never(signed).expect("an uncontended turn is taken at once").unwrap()
        }
    }

    #[test]
    fn an_unchanged_list_is_signed_once_per_page() {
        let f = fixture(25);
        let first = f.get(0, 10);
        for _ in 0..5 {
            assert_eq!(f.get(0, 10).body, first.body, "the same bytes, iat included");
        }
        assert_eq!(f.pages.signatures(), 1);
        f.get(10, 10);
        f.get(20, 10);
        f.get(10, 10);
        assert_eq!(f.pages.signatures(), 3, "one signature per distinct page");
    }

    #[test]
    fn an_append_re_signs_only_the_last_page() {
        let f = fixture(25);
        let (full, last) = (f.get(0, 10), f.get(20, 10));
        assert!(full.more && !last.more);
        f.list.apply(&[entry(26)]);
        assert_eq!(f.get(0, 10).body, full.body, "a full page below the watermark is unchanged");
        let new_last = f.get(20, 10);
        assert_ne!(new_last.body, last.body);
        assert_eq!(new_last.cursor, 26);
        assert_eq!(f.pages.signatures(), 3);
    }

    #[test]
    fn a_purge_a_new_key_or_age_re_signs() {
        let f = fixture(25);
        f.get(0, 10);
        f.list.purge(1_800_000_003);
        let purged = f.get(0, 10);
        assert_eq!(purged.cursor, 12, "entries 1 and 2 expired: the page now holds 3 to 12");
        assert_eq!(f.pages.signatures(), 2);
        f.clock.advance(Duration::from_secs(REFRESH_SECONDS as u64));
        f.get(0, 10);
        assert_eq!(f.pages.signatures(), 3, "an old signature is renewed before the document nears its exp");
        let now = f.clock.now();
        f.keyring.directory().generate_signing(SigningAlgorithm::ES256, now, now).unwrap();
        f.keyring.refresh().unwrap();
        let renewed = f.get(0, 10);
        assert_eq!(f.pages.signatures(), 4, "the newly active key signs");
        assert_eq!(f.get(0, 10).body, renewed.body);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn followers_asking_at_once_after_a_change_cause_one_signature() {
        let f = Arc::new(fixture(25));
        f.get(20, 10);
        f.list.apply(&[entry(26)]);
        let before = f.pages.signatures();
        let askers: Vec<_> = (0..16)
            .map(|_| {
                let f = f.clone();
                tokio::spawn(async move {
                    let keys = f.keyring.view();
                    f.pages.get(&f.list, &keys, "https://issuer.test", 20, 10, f.clock.now()).await.unwrap().body.clone()
                })
            })
            .collect();
        let mut bodies = Vec::new();
        for asker in askers {
            bodies.push(asker.await.unwrap());
        }
        assert!(bodies.windows(2).all(|pair| pair[0] == pair[1]), "every follower got the same bytes");
        assert_eq!(f.pages.signatures(), before + 1);
    }

    #[test]
    fn the_cache_stays_within_its_bounds() {
        let f = fixture(200);
        for after in 0..(MAX_PAGES as u64 + 10) {
            f.get(after, 1);
        }
        assert_eq!(f.pages.len(), MAX_PAGES);
        f.get(0, 1);
        assert_eq!(f.pages.signatures(), MAX_PAGES as u64 + 11, "the least recently used page was evicted");
    }
}
