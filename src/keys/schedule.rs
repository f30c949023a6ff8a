//! The key lifecycle as a pure function of the clock and the metadata.
//!
//! Nothing here reads files or the wall clock; the keyring and the CLI call
//! [`state`] with a `now`, which is what makes the lifecycle testable with a
//! manual clock and identical across replicas.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// What a key is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeyUse {
    /// Signs access tokens; published in the JWKS.
    Signing,
    /// MACs refresh tokens; never published.
    RefreshMac,
}

/// The metadata file beside each key (`<kid>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyMeta {
    pub kid: String,
    /// `ES256`, `EdDSA`, … for signing keys; `HS256` for the MAC key.
    pub alg: String,
    #[serde(rename = "use")]
    pub key_use: KeyUse,
    pub created: DateTime<Utc>,
    pub activates_at: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retires_at: Option<DateTime<Utc>>,
    /// Emergency withdrawal (`keys revoke`): from this instant the key is
    /// neither published nor trusted, and the revocation feed says so.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// Where a key is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum KeyState {
    /// Published, not yet signing.
    Pending,
    /// The one key of its use that signs.
    Active,
    /// No longer signs; published until every token it signed has expired.
    Retired,
    /// Withdrawn in an emergency: not published, not trusted.
    Revoked,
    /// Past all use; `keys prune` deletes it.
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Retired => "retired",
            Self::Revoked => "revoked",
            Self::Expired => "expired",
        }
    }

    /// Whether verifiers must be able to find this key.
    pub fn is_published(self) -> bool {
        matches!(self, Self::Pending | Self::Active | Self::Retired)
    }
}

impl KeyMeta {
    /// Order among keys of one use: later activation is newer; ties broken
    /// by creation time then kid, so every replica picks the same key.
    fn newness(&self) -> (DateTime<Utc>, DateTime<Utc>, &str) {
        (self.activates_at, self.created, &self.kid)
    }
}

/// When `key` stops signing: its own `retires_at`, or the activation of the
/// next newer key of the same use, whichever comes first.
pub fn retirement(key: &KeyMeta, all: &[KeyMeta]) -> Option<DateTime<Utc>> {
    let superseded = all
        .iter()
        .filter(|other| other.key_use == key.key_use && other.newness() > key.newness())
        // A key withdrawn before it activated never signs, so supersedes
        // nothing; nor does a revoked key.
        .filter(|other| other.retires_at.is_none_or(|r| r > other.activates_at) && other.revoked_at.is_none())
        .map(|other| other.activates_at)
        .min();
    match (key.retires_at, superseded) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// The state of a key whose retirement is already known. `token_lifetime`
/// is the longest a token made with this key stays valid.
pub fn state(meta: &KeyMeta, retirement: Option<DateTime<Utc>>, token_lifetime: Duration, now: DateTime<Utc>) -> KeyState {
    let activates_at = meta.activates_at;
    if let Some(revoked) = meta.revoked_at.filter(|r| *r <= now) {
        // Kept (unpublished) until its tokens have expired, then prunable.
        let gone = revoked.checked_add_signed(chrono::Duration::from_std(token_lifetime).unwrap_or(chrono::Duration::MAX));
        return if gone.is_some_and(|g| now >= g) { KeyState::Expired } else { KeyState::Revoked };
    }
    match expiry(activates_at, retirement, token_lifetime) {
        Some(expires) if now >= expires => KeyState::Expired,
        // Withdrawn before it activated: it never signed anything.
        _ if retirement.is_some_and(|r| r <= activates_at && now >= r) => KeyState::Expired,
        _ if now < activates_at => KeyState::Pending,
        _ if retirement.is_none_or(|r| now < r) => KeyState::Active,
        _ => KeyState::Retired,
    }
}

/// When a retired key stops being published.
pub fn expiry(activates_at: DateTime<Utc>, retirement: Option<DateTime<Utc>>, token_lifetime: Duration) -> Option<DateTime<Utc>> {
    let retired = retirement?;
    if retired <= activates_at {
        return Some(retired);
    }
    retired.checked_add_signed(chrono::Duration::from_std(token_lifetime).ok()?)
}

/// The longest a token made with a key of each use stays valid; a retired
/// key is kept (and, for signing keys, published) this long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenLifetimes {
    pub access: Duration,
    pub refresh: Duration,
}

impl TokenLifetimes {
    pub fn for_use(&self, key_use: KeyUse) -> Duration {
        match key_use {
            KeyUse::Signing => self.access,
            KeyUse::RefreshMac => self.refresh,
        }
    }
}

/// One row of the key timeline (`tessera keys list`).
#[derive(Debug, Clone)]
pub struct TimelineRow {
    pub meta: KeyMeta,
    pub state: KeyState,
    pub retires: Option<DateTime<Utc>>,
    pub expires: Option<DateTime<Utc>>,
}

/// Every key with its state at `now` and the instants that matter.
pub fn timeline(metas: &[KeyMeta], lifetimes: TokenLifetimes, now: DateTime<Utc>) -> Vec<TimelineRow> {
    metas
        .iter()
        .map(|meta| {
            let retires = retirement(meta, metas);
            let lifetime = lifetimes.for_use(meta.key_use);
            TimelineRow {
                meta: meta.clone(),
                state: state(meta, retires, lifetime, now),
                retires,
                expires: expiry(meta.activates_at, retires, lifetime),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};

    fn meta(kid: &str, activates: i64, retires: Option<i64>) -> KeyMeta {
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap();
        KeyMeta {
            kid: kid.into(),
            alg: "ES256".into(),
            key_use: KeyUse::Signing,
            created: at(0),
            activates_at: at(activates),
            retires_at: retires.map(at),
            revoked_at: None,
        }
    }

    fn state_at(key: &KeyMeta, all: &[KeyMeta], clock: &ManualClock) -> KeyState {
        state(key, retirement(key, all), Duration::from_secs(600), clock.now())
    }

    #[test]
    fn a_key_goes_pending_active_retired_expired() {
        let old = meta("old", 0, None);
        let new = meta("new", 1_000, None);
        let all = [old.clone(), new.clone()];
        let clock = ManualClock::at_unix(500);
        assert_eq!(state_at(&old, &all, &clock), KeyState::Active);
        assert_eq!(state_at(&new, &all, &clock), KeyState::Pending);

        clock.set(DateTime::from_timestamp(1_000, 0).unwrap());
        assert_eq!(state_at(&old, &all, &clock), KeyState::Retired);
        assert_eq!(state_at(&new, &all, &clock), KeyState::Active);

        // Retired keys stay published for one token lifetime (600 s here).
        clock.advance(Duration::from_secs(599));
        assert_eq!(state_at(&old, &all, &clock), KeyState::Retired);
        clock.advance(Duration::from_secs(1));
        assert_eq!(state_at(&old, &all, &clock), KeyState::Expired);
        assert!(!KeyState::Expired.is_published());
    }

    #[test]
    fn explicit_retirement_wins_when_earlier() {
        let key = meta("k", 0, Some(100));
        let all = [key.clone()];
        let clock = ManualClock::at_unix(99);
        assert_eq!(state_at(&key, &all, &clock), KeyState::Active);
        clock.advance(Duration::from_secs(1));
        assert_eq!(state_at(&key, &all, &clock), KeyState::Retired);
    }

    #[test]
    fn only_the_newest_activated_key_is_active() {
        let keys = [meta("a", 0, None), meta("b", 10, None), meta("c", 20, None), meta("d", 5_000, None)];
        let clock = ManualClock::at_unix(30);
        let active: Vec<_> = keys.iter().filter(|k| state_at(k, &keys, &clock) == KeyState::Active).map(|k| k.kid.as_str()).collect();
        assert_eq!(active, ["c"]);
    }

    #[test]
    fn identical_activation_times_still_pick_one_key() {
        let keys = [meta("a", 10, None), meta("b", 10, None)];
        let clock = ManualClock::at_unix(10);
        let active: Vec<_> = keys.iter().filter(|k| state_at(k, &keys, &clock) == KeyState::Active).map(|k| k.kid.as_str()).collect();
        assert_eq!(active, ["b"]);
    }

    #[test]
    fn keys_of_different_uses_do_not_supersede_each_other() {
        let signing = meta("s", 0, None);
        let mut mac = meta("m", 10, None);
        mac.key_use = KeyUse::RefreshMac;
        let all = [signing.clone(), mac];
        assert_eq!(state_at(&signing, &all, &ManualClock::at_unix(20)), KeyState::Active);
    }
}
