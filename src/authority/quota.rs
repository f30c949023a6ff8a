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

/// What a request is counted against.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// A confidential client, or a public one past the key bound.
    Client(&'a str),
    /// The session a public client's token belongs to.
    Session(&'a str),
}

type Counts = HashMap<String, u32, foldhash::fast::RandomState>;

/// Counts of revocation requests in the current minute.
#[derive(Debug, Default)]
pub struct RevocationQuota(Mutex<Window>);

#[derive(Debug, Default)]
struct Window {
    minute: i64,
    clients: Counts,
    sessions: Counts,
}

impl Window {
    fn len(&self) -> usize {
        self.clients.len() + self.sessions.len()
    }
}

impl RevocationQuota {
    pub fn new() -> Self {
        Self::default()
    }

    /// Count one request of `key` (falling back to client `shared` when the
    /// table is full) against `per_minute` at Unix second `now`. `Err`
    /// carries the seconds until the window turns (for `Retry-After`).
    /// Looking a key up allocates nothing; only a key's first request in a
    /// minute stores it.
    pub fn take(&self, key: Key<'_>, shared: &str, per_minute: u32, now: i64) -> Result<(), u64> {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let window = &mut *guard;
        let minute = now.div_euclid(60);
        if window.minute != minute {
            window.minute = minute;
            for counts in [&mut window.clients, &mut window.sessions] {
                counts.clear();
                counts.shrink_to(MAX_KEYS / 16);
            }
        }
        let full = window.len() >= MAX_KEYS;
        let (counts, name) = match key {
            Key::Session(sid) if !full || window.sessions.contains_key(sid) => (&mut window.sessions, sid),
            Key::Client(id) if !full || window.clients.contains_key(id) => (&mut window.clients, id),
            _ => (&mut window.clients, shared),
        };
        let count = match counts.get_mut(name) {
            Some(count) => count,
            None => counts.entry(name.to_string()).or_insert(0),
        };
        if *count >= per_minute {
            return Err((60 - now.rem_euclid(60)) as u64);
        }
        *count += 1;
        Ok(())
    }

    /// How many keys are counted now (for tests).
    pub fn keys(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
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
            assert_eq!(quota.take(Key::Client("a"), "a", 3, start + 10), Ok(()));
        }
        assert_eq!(quota.take(Key::Client("a"), "a", 3, start + 10), Err(50));
        assert_eq!(quota.take(Key::Client("b"), "b", 3, start + 10), Ok(()), "keys are counted apart");
        assert_eq!(quota.take(Key::Client("a"), "a", 3, start + 60), Ok(()), "a new minute, a new quota");
    }

    #[test]
    fn a_session_and_a_client_of_the_same_name_are_counted_apart() {
        let quota = RevocationQuota::new();
        assert_eq!(quota.take(Key::Client("x"), "x", 1, 60), Ok(()));
        assert_eq!(quota.take(Key::Session("x"), "x", 1, 60), Ok(()), "a session named like a client has its own count");
        assert!(quota.take(Key::Client("x"), "x", 1, 60).is_err() && quota.take(Key::Session("x"), "x", 1, 60).is_err());
    }

    #[test]
    fn the_table_never_grows_past_its_bound() {
        let quota = RevocationQuota::new();
        for i in 0..MAX_KEYS + 500 {
            let _ = quota.take(Key::Session(&format!("{i}")), "web", 600, 60);
        }
        assert_eq!(quota.keys(), MAX_KEYS + 1, "the sessions counted, and the client's shared count");
        // Past the bound, new keys share the client's count.
        let mut refused = 0;
        for i in 0..1000 {
            refused += usize::from(quota.take(Key::Session(&format!("late-{i}")), "web", 600, 60).is_err());
        }
        assert_eq!(refused, 1500 - 600, "overflowing keys are limited together");
        assert_eq!(quota.keys(), MAX_KEYS + 1);
    }
}
