//! Per-client quotas on revocation requests, so no client can grow the
//! revocation list — which every replica and every verifier holds in
//! memory — faster than its `revocation_quota` allows.
//!
//! A fixed one-minute window per key, reset for every key when the minute
//! turns. A key is a confidential client's id, or, for a public client
//! (whose id anyone may use), the session the revoked token belongs to, so
//! one browser cannot use up the quota of every other user of the same
//! app. At most [`MAX_KEYS`] keys are counted per minute; past that, new
//! keys share their client's count (one more key per configured client at
//! most). Memory stays bounded whatever callers send.

use std::collections::HashMap;
use std::sync::Mutex;

/// Most distinct keys counted in one minute.
pub const MAX_KEYS: usize = 10_000;

/// Counts of revocation requests in the current minute.
#[derive(Debug, Default)]
pub struct RevocationQuota(Mutex<Window>);

#[derive(Debug, Default)]
struct Window {
    minute: i64,
    counts: HashMap<String, u32>,
}

impl RevocationQuota {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one request of `key` (falling back to `shared` when the table
    /// is full) against `per_minute` at Unix second `now`. `Err` carries
    /// the seconds until the window turns (for `Retry-After`).
    pub fn take(&self, key: &str, shared: &str, per_minute: u32, now: i64) -> Result<(), u64> {
        let mut window = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let minute = now.div_euclid(60);
        if window.minute != minute {
            window.minute = minute;
            window.counts.clear();
            window.counts.shrink_to(MAX_KEYS / 16);
        }
        let key = if window.counts.contains_key(key) || window.counts.len() < MAX_KEYS { key } else { shared };
        let count = match window.counts.get_mut(key) {
            Some(count) => count,
            None => window.counts.entry(key.to_string()).or_insert(0),
        };
        if *count >= per_minute {
            return Err((60 - now.rem_euclid(60)) as u64);
        }
        *count += 1;
        Ok(())
    }

    /// How many keys are counted now (for tests).
    pub fn keys(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).counts.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_gets_its_quota_per_minute_then_retry_after_says_when_the_minute_turns() {
        let quota = RevocationQuota::new();
        let start = 1_800_000_000; // a whole minute
        for _ in 0..3 {
            assert_eq!(quota.take("client:a", "client:a", 3, start + 10), Ok(()));
        }
        assert_eq!(quota.take("client:a", "client:a", 3, start + 10), Err(50));
        assert_eq!(quota.take("client:b", "client:b", 3, start + 10), Ok(()), "keys are counted apart");
        assert_eq!(quota.take("client:a", "client:a", 3, start + 60), Ok(()), "a new minute, a new quota");
    }

    #[test]
    fn the_table_never_grows_past_its_bound() {
        let quota = RevocationQuota::new();
        for i in 0..MAX_KEYS + 500 {
            let _ = quota.take(&format!("session:{i}"), "client:web", 600, 60);
        }
        assert_eq!(quota.keys(), MAX_KEYS + 1, "the sessions counted, and the client's shared count");
        // Past the bound, new keys share the client's count.
        let mut refused = 0;
        for i in 0..1000 {
            refused += usize::from(quota.take(&format!("session:late-{i}"), "client:web", 600, 60).is_err());
        }
        assert_eq!(refused, 1500 - 600, "overflowing keys are limited together");
        assert_eq!(quota.keys(), MAX_KEYS + 1);
    }
}
