//! Failed attempts per key in a sliding window, with a limit: once a key
//! has failed `limit` times within the window, further attempts are
//! refused — without being tried — until enough failures have aged out.
//!
//! The window is kept as ten buckets (plus the one filling now) of a tenth
//! of the window each, so a key costs a few dozen bytes whatever the limit,
//! the count is exact, and the window slides in steps of a tenth: a
//! failure is counted for at least the window and at most a tenth longer.
//!
//! An attempt is counted *before* it is tried ([`FailureLimit::begin`])
//! and taken back when it succeeds ([`FailureLimit::succeeded`]), so
//! concurrent attempts cannot all slip in under the limit: at most `limit`
//! failures are tried per window, exactly.

use super::generations::Generations;
use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Buckets a window is cut into.
const BUCKETS: u64 = 10;
/// Slots kept: the window's buckets and the one filling now.
const SLOTS: u64 = BUCKETS + 1;

/// One key's failures, per bucket.
#[derive(Debug, Default)]
struct Tally {
    counts: [u32; SLOTS as usize],
    /// The bucket number of the newest slot.
    newest: u64,
}

impl Tally {
    /// Move the window to `bucket`, forgetting the buckets it leaves.
    fn advance(&mut self, bucket: u64) {
        if bucket > self.newest {
            for step in 1..=(bucket - self.newest).min(SLOTS) {
                self.counts[((self.newest + step) % SLOTS) as usize] = 0;
            }
            self.newest = bucket;
        }
    }

    fn total(&self) -> u32 {
        self.counts.iter().sum()
    }

    /// The first bucket whose leaving brings the total under `limit`.
    fn freeing_bucket(&self, limit: u32) -> u64 {
        let mut remaining = self.total();
        let oldest = self.newest.saturating_sub(BUCKETS);
        for bucket in oldest..=self.newest {
            remaining -= self.counts[(bucket % SLOTS) as usize];
            if remaining < limit {
                return bucket;
            }
        }
        self.newest
    }
}

/// An attempt counted as failed until it is taken back.
#[derive(Debug)]
#[must_use = "an attempt that succeeded must be taken back with `succeeded`"]
pub struct Pending {
    bucket: u64,
    /// The key's hash in the tallies, so taking the attempt back does not
    /// hash the key again.
    hash: u64,
    /// This attempt used the key's last allowed failure.
    pub reached_limit: bool,
}

/// Failures per key of type `K`, at most `limit` per window.
#[derive(Debug)]
pub struct FailureLimit<K> {
    limit: u32,
    width: Duration,
    epoch: Instant,
    tallies: Mutex<Generations<K, Tally>>,
}

impl<K: Hash + Eq + Clone> FailureLimit<K> {
    /// At most `limit` failures per `window` for each of at most `cap` keys
    /// (`limit` 0: no limit, nothing tracked).
    pub fn new(limit: u32, window: Duration, cap: usize, now: Instant) -> Self {
        let width = (window / BUCKETS as u32).max(Duration::from_millis(1));
        Self { limit, width, epoch: now, tallies: Mutex::new(Generations::new(cap, width * SLOTS as u32, now)) }
    }

    fn bucket(&self, now: Instant) -> u64 {
        (now.saturating_duration_since(self.epoch).as_nanos() / self.width.as_nanos()) as u64
    }

    /// When `bucket` begins, from the epoch.
    fn bucket_start(&self, bucket: u64) -> Duration {
        Duration::from_nanos((self.width.as_nanos() as u64).saturating_mul(bucket))
    }

    /// Count an attempt of `key` as failed, unless the key has used its
    /// failures: then how long until it may try again. `Ok(None)` when
    /// there is no limit.
    pub fn begin(&self, key: &K, now: Instant) -> Result<Option<Pending>, Duration> {
        if self.limit == 0 {
            return Ok(None);
        }
        let bucket = self.bucket(now);
        let mut tallies = self.tallies.lock().expect("throttle lock");
        let hash = tallies.hash(key);
        let tally = tallies.get_or_insert_with(hash, key, now, Tally::default);
        tally.advance(bucket);
        let total = tally.total();
        if total >= self.limit {
            return Err(self.wait(tally, now));
        }
        tally.counts[(bucket % SLOTS) as usize] += 1;
        Ok(Some(Pending { bucket, hash, reached_limit: total + 1 == self.limit }))
    }

    /// How long `key` must wait if it has used up its failures, without
    /// counting anything (and without tracking a key that has none).
    pub fn refused(&self, key: &K, now: Instant) -> Option<Duration> {
        if self.limit == 0 {
            return None;
        }
        let bucket = self.bucket(now);
        let mut tallies = self.tallies.lock().expect("throttle lock");
        let hash = tallies.hash(key);
        let tally = tallies.get_mut(hash, key, now)?;
        tally.advance(bucket);
        (tally.total() >= self.limit).then(|| self.wait(tally, now))
    }

    /// How long until a tally at its limit frees a failure.
    fn wait(&self, tally: &Tally, now: Instant) -> Duration {
        let frees_at = self.epoch + self.bucket_start(tally.freeing_bucket(self.limit) + SLOTS);
        frees_at.saturating_duration_since(now)
    }

    /// The attempt succeeded: it is not a failure after all.
    pub fn succeeded(&self, key: &K, pending: Pending, now: Instant) {
        let mut tallies = self.tallies.lock().expect("throttle lock");
        let Some(tally) = tallies.get_mut(pending.hash, key, now) else {
            return;
        };
        if tally.newest.checked_sub(pending.bucket).is_some_and(|age| age < SLOTS) {
            let count = &mut tally.counts[(pending.bucket % SLOTS) as usize];
            *count = count.saturating_sub(1);
        }
        // Keep only keys that failed: successes leave nothing behind.
        if tally.total() == 0 {
            tallies.remove(pending.hash, key);
        }
    }

    #[cfg(test)]
    /// Keys tracked now.
    pub fn tracked(&self) -> usize {
        self.tallies.lock().expect("throttle lock").len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WINDOW: Duration = Duration::from_secs(60);

    fn fail(limit: &FailureLimit<&'static str>, key: &'static str, now: Instant) -> Result<bool, Duration> {
        limit.begin(&key, now).map(|pending| pending.expect("a limit").reached_limit)
    }

    #[test]
    fn the_limit_refuses_exactly_after_limit_failures_and_says_when_to_retry() {
        let start = Instant::now();
        let limit = FailureLimit::new(20, WINDOW, 1_000, start);
        for attempt in 1..=20 {
            assert_eq!(fail(&limit, "svc", start), Ok(attempt == 20), "attempt {attempt}");
        }
        let wait = fail(&limit, "svc", start + Duration::from_secs(1)).unwrap_err();
        assert!(wait > Duration::from_secs(58) && wait <= WINDOW + WINDOW / 10, "{wait:?}");
        assert!(fail(&limit, "other", start).is_ok(), "another key is unaffected");
    }

    #[test]
    fn the_window_slides_and_frees_the_key_once_it_has_passed() {
        let start = Instant::now();
        let limit = FailureLimit::new(3, WINDOW, 1_000, start);
        for _ in 0..3 {
            fail(&limit, "svc", start).unwrap();
        }
        let wait = fail(&limit, "svc", start + Duration::from_secs(30)).unwrap_err();
        assert!(fail(&limit, "svc", start + Duration::from_secs(30) + wait - Duration::from_millis(1)).is_err());
        assert_eq!(fail(&limit, "svc", start + Duration::from_secs(30) + wait), Ok(false), "free once the window has passed");
    }

    #[test]
    fn failures_spread_over_the_window_free_one_at_a_time() {
        let start = Instant::now();
        let limit = FailureLimit::new(2, WINDOW, 1_000, start);
        fail(&limit, "svc", start).unwrap();
        fail(&limit, "svc", start + Duration::from_secs(30)).unwrap();
        let wait = fail(&limit, "svc", start + Duration::from_secs(31)).unwrap_err();
        // The first failure leaves the window after about a minute.
        assert!(wait > Duration::from_secs(29) && wait <= Duration::from_secs(36), "{wait:?}");
        let later = start + Duration::from_secs(31) + wait;
        assert_eq!(fail(&limit, "svc", later), Ok(true), "the second failure still counts");
        assert!(fail(&limit, "svc", later).is_err());
    }

    #[test]
    fn a_success_takes_back_only_its_own_attempt() {
        let start = Instant::now();
        let limit = FailureLimit::new(3, WINDOW, 1_000, start);
        fail(&limit, "peer", start).unwrap();
        fail(&limit, "peer", start).unwrap();
        let pending = limit.begin(&"peer", start).unwrap().unwrap();
        limit.succeeded(&"peer", pending, start);
        assert_eq!(fail(&limit, "peer", start), Ok(true), "the two failures still count");
        assert!(fail(&limit, "peer", start).is_err());
    }

    #[test]
    fn successes_leave_no_state_behind() {
        let start = Instant::now();
        let limit = FailureLimit::new(3, WINDOW, 1_000, start);
        for key in ["a", "b", "c"] {
            let pending = limit.begin(&key, start).unwrap().unwrap();
            limit.succeeded(&key, pending, start);
        }
        assert_eq!(limit.tracked(), 0);
    }

    #[test]
    fn the_keys_tracked_stay_under_the_cap_when_a_flood_passes_it() {
        let start = Instant::now();
        let limit = FailureLimit::new(5, WINDOW, 1_000, start);
        for key in 0..50_000u32 {
            let _failed = limit.begin(&key, start).unwrap().unwrap();
            assert!(limit.tracked() <= 1_000, "{} keys after {key}", limit.tracked());
        }
        // The newest keys are still counted.
        for _ in 0..4 {
            let _failed = limit.begin(&49_999, start).unwrap().unwrap();
        }
        assert!(limit.begin(&49_999, start).is_err());
    }

    #[test]
    fn a_limit_of_zero_tracks_nothing() {
        let start = Instant::now();
        let limit = FailureLimit::new(0, WINDOW, 1_000, start);
        for _ in 0..100 {
            assert!(limit.begin(&"svc", start).unwrap().is_none());
        }
        assert_eq!(limit.tracked(), 0);
    }
}
