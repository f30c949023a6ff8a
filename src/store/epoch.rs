//! Store epochs: noticing that the store was lost or replaced.
//!
//! tessera keeps no session table: a refresh token is valid unless the
//! store says otherwise. A store that silently comes back empty — a deleted
//! or truncated file, a Redis restarted without persistence — would
//! therefore revive every logged-out session and forget every consumed
//! refresh token. To fail closed instead, each store records *as what and
//! when it was created* (an [`Epoch`]: a random id and the creation instant)
//! and the key directory records which epoch it works with. At start,
//! [`decide`] compares the two:
//!
//! | key directory | store | outcome |
//! |---|---|---|
//! | names this epoch | — | start |
//! | names no epoch | existing (or an older tessera's, adopted) | record the epoch, start |
//! | names no epoch | new, keys just created | first start: record, start |
//! | names no epoch | new, keys older than it | record, start behind a global not-before (harmless on a real first start: no token exists yet) |
//! | names another epoch | any | a security event: refuse, unless the operator accepts the new store — then start behind a global not-before |
//!
//! The global not-before is a revocation entry ([`Covers::Before`]) at the
//! new epoch's creation instant, kept for the longest a session can live:
//! every token issued before it is refused, here and (through the feed) by
//! every verifier. Users sign in again; no revoked session comes back.

use crate::revocations::{Covers, Revocation};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// As what and when a store was created.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Epoch {
    /// Random, 16 hex digits; a new store gets a new one.
    pub id: String,
    /// When the store was created (Unix seconds).
    pub created: i64,
}

impl Epoch {
    /// A new epoch created at `now`.
    pub fn new(now: i64) -> Self {
        Self { id: new_id(), created: now }
    }
}

/// A fresh random store id.
pub fn new_id() -> String {
    use ring::rand::SecureRandom;
    let mut bytes = [0u8; 8];
    ring::rand::SystemRandom::new().fill(&mut bytes).expect("system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How the store came by its epoch when it was read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// It had one.
    Existing,
    /// It holds data from a tessera that did not record epochs; it got one now.
    Adopted,
    /// It is new (or came back empty) and got one now.
    Created,
}

/// A store's epoch as read (or just created).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reading {
    pub epoch: Epoch,
    pub origin: Origin,
}

/// What the key directory records about its store (`store-epoch.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub store_id: String,
    pub created: i64,
    /// For the operator: which store this was.
    #[serde(default)]
    pub store: String,
}

impl Recorded {
    pub fn of(epoch: &Epoch, store: &str) -> Self {
        Self { store_id: epoch.id.clone(), created: epoch.created, store: store.to_string() }
    }

    pub fn parse(text: &str) -> Result<Self, String> {
        serde_json::from_str(text).map_err(|e| format!("not a store epoch record: {e}"))
    }

    pub fn to_json(&self) -> String {
        format!("{}\n", serde_json::to_string_pretty(self).expect("a record serializes"))
    }
}

/// What to do at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// The key directory names this store: start.
    Start,
    /// Nothing was recorded and nothing can have been lost: record, start.
    Record,
    /// Record, and start behind a global not-before at the store's creation.
    /// `event`: a security event (the store was lost or replaced), not a
    /// precaution.
    NotBefore { event: bool },
    /// The store was lost or replaced and the operator has not accepted it.
    Refuse,
}

/// The pure rule (see the module table). `keys_created_now`: the key
/// directory had no usable key before this start; `accept`: the operator
/// said `--accept-new-store` (or `store.accept_new_store = true`).
pub fn decide(recorded: Option<&Recorded>, found: &Reading, keys_created_now: bool, accept: bool) -> Decision {
    match recorded {
        Some(recorded) if recorded.store_id == found.epoch.id => Decision::Start,
        Some(_) if accept => Decision::NotBefore { event: true },
        Some(_) => Decision::Refuse,
        None => match found.origin {
            Origin::Existing | Origin::Adopted => Decision::Record,
            Origin::Created if keys_created_now => Decision::Record,
            Origin::Created => Decision::NotBefore { event: false },
        },
    }
}

/// The global not-before for a store created at `epoch.created`: kept until
/// no session that began before it can be alive.
pub fn not_before(epoch: &Epoch, session_max_age: Duration) -> Revocation {
    let until = epoch.created.saturating_add(i64::try_from(session_max_age.as_secs()).unwrap_or(i64::MAX / 2));
    Revocation::new(Covers::Before { before: epoch.created }, until)
}

/// What was found instead of the recorded store, for [`refusal`].
pub fn found(found: &Reading, location: &str) -> String {
    match found.origin {
        Origin::Created => format!("a new, empty store was found: {location}"),
        Origin::Adopted | Origin::Existing => {
            format!("{location} is another store (id {}, created {})", found.epoch.id, instant(found.epoch.created))
        }
    }
}

/// Why the start was refused, for the operator: what was found, what it
/// means, and the two ways forward.
pub fn refusal(recorded: &Recorded, what: &str, keys_dir: &str) -> String {
    format!(
        "security event (store_replaced): the key directory {keys_dir} worked with store {} (created {}), but {what}. \
         Its revocations and consumed refresh tokens are lost: starting on it would revive every logged-out session. \
         If the old store can be restored, restore it. Otherwise start once with `tessera serve --accept-new-store` \
         (or set store.accept_new_store = true): every token issued before the new store was created is then refused, \
         and users sign in again.",
        recorded.store_id,
        instant(recorded.created),
    )
}

fn instant(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0).map_or_else(|| unix.to_string(), |t| t.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(id: &str, origin: Origin) -> Reading {
        Reading { epoch: Epoch { id: id.into(), created: 1_000 }, origin }
    }

    fn recorded(id: &str) -> Recorded {
        Recorded { store_id: id.into(), created: 900, store: "embedded (/x)".into() }
    }

    #[test]
    fn the_store_the_key_directory_names_starts() {
        for origin in [Origin::Existing, Origin::Adopted, Origin::Created] {
            assert_eq!(decide(Some(&recorded("a")), &reading("a", origin), false, false), Decision::Start);
        }
    }

    #[test]
    fn another_store_is_refused_unless_accepted_and_then_starts_behind_a_not_before() {
        for origin in [Origin::Existing, Origin::Adopted, Origin::Created] {
            for keys_created_now in [false, true] {
                let found = reading("b", origin);
                assert_eq!(decide(Some(&recorded("a")), &found, keys_created_now, false), Decision::Refuse);
                assert_eq!(decide(Some(&recorded("a")), &found, keys_created_now, true), Decision::NotBefore { event: true });
            }
        }
    }

    #[test]
    fn a_first_start_is_no_event() {
        assert_eq!(decide(None, &reading("a", Origin::Created), true, false), Decision::Record);
        assert_eq!(decide(None, &reading("a", Origin::Existing), false, false), Decision::Record);
        assert_eq!(decide(None, &reading("a", Origin::Adopted), false, false), Decision::Record, "an older tessera's store");
    }

    #[test]
    fn a_new_store_beside_older_keys_starts_behind_a_not_before_without_asking() {
        assert_eq!(decide(None, &reading("a", Origin::Created), false, false), Decision::NotBefore { event: false });
    }

    #[test]
    fn the_not_before_covers_everything_issued_by_the_creation_for_a_whole_session() {
        let entry = not_before(&Epoch { id: "a".into(), created: 1_000 }, Duration::from_secs(90 * 86_400));
        assert_eq!(entry, Revocation::new(Covers::Before { before: 1_000 }, 1_000 + 90 * 86_400));
    }

    #[test]
    fn the_refusal_names_both_stores_and_the_way_forward() {
        let text = refusal(&recorded("a"), &found(&reading("b", Origin::Created), "embedded (/abs/data/tessera.redb)"), "/abs/keys");
        for expected in
            ["store_replaced", "/abs/data/tessera.redb", "/abs/keys", "--accept-new-store", "store.accept_new_store", " a ", "new, empty"]
        {
            assert!(text.contains(expected), "{expected:?} missing from {text}");
        }
    }

    #[test]
    fn records_round_trip_and_ids_are_random() {
        let record = Recorded::of(&Epoch { id: "0123456789abcdef".into(), created: 5 }, "redis (redis://***@h)");
        assert_eq!(Recorded::parse(&record.to_json()).unwrap(), record);
        assert!(Recorded::parse("{}").is_err());
        let (a, b) = (new_id(), new_id());
        assert_eq!(a.len(), 16);
        assert_ne!(a, b);
    }
}
