//! The verifier's copy of tessera's revocation list, checked on every
//! verification without waiting on anything.
//!
//! The wire format is the server's `RevocationEntry` (tessera's `store`),
//! redeclared here because the verifier builds without the server. Five
//! kinds of entry: a token (`jti`), a session (`sid`), a subject's tokens
//! issued at or before an instant, a signing key (`kid`), and every token
//! issued at or before an instant (`all_before`: the issuer lost or replaced
//! its revocation store, so nothing issued before then is trusted). Each carries the
//! instant after which it covers nothing still valid, and is dropped then,
//! so the copy stays as small as the server's list. A kind this version
//! does not know is logged and skipped: it cannot be enforced, and refusing
//! the whole feed would drop the kinds it can.

use super::claims::Claims;
use super::token::VerifyError;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::RwLock;

/// How often at most expired entries are swept out.
const PURGE_EVERY_SECONDS: i64 = 60;

/// What a revocation covers.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub(crate) enum Revocation {
    Token {
        jti: String,
    },
    Session {
        sid: String,
    },
    Subject {
        sub: String,
        before: i64,
    },
    Key {
        kid: String,
    },
    #[serde(rename = "all_before")]
    AllBefore {
        before: i64,
    },
    #[serde(other)]
    Unknown,
}

/// One entry of the feed.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub(crate) struct RevocationEntry {
    pub seq: u64,
    #[serde(flatten)]
    pub revocation: Revocation,
    pub expires_at: i64,
}

/// Which revocation covered a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RevocationKind {
    /// The token itself, by `jti` (RFC 7009 revocation of an access token).
    #[error("this token (its jti) was revoked")]
    Token,
    /// Its session, by `sid` (logout, refresh-token reuse).
    #[error("its session (sid) was ended")]
    Session,
    /// Every token of its `sub` issued at or before an instant (logout
    /// everywhere, password change).
    #[error("every token of its subject issued by then was revoked")]
    Subject,
    /// Its signing key, by `kid` (an emergency key withdrawal).
    #[error("its signing key (kid) was withdrawn")]
    Key,
    /// Issued before the issuer's global not-before: the issuer lost or
    /// replaced its revocation store and trusts nothing issued earlier.
    #[error("it was issued before the issuer's revocation store was replaced")]
    AllBefore,
}

#[derive(Default)]
struct Covered {
    /// Each map: the key → the instant the entry stops mattering.
    tokens: HashMap<String, i64>,
    sessions: HashMap<String, i64>,
    /// sub → (latest `before`, expiry).
    subjects: HashMap<String, (i64, i64)>,
    keys: HashMap<String, i64>,
    /// The global not-before: (latest `before`, expiry).
    all_before: Option<(i64, i64)>,
    purged_at: i64,
}

/// The in-memory revocation list.
#[derive(Default)]
pub(crate) struct RevocationMirror {
    covered: RwLock<Covered>,
}

impl RevocationMirror {
    /// Add entries (idempotent, any order); sweep out expired ones now and
    /// then.
    pub fn apply(&self, entries: &[RevocationEntry], now: i64) {
        let mut covered = self.covered.write().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            let expires = entry.expires_at;
            match &entry.revocation {
                Revocation::Token { jti } => {
                    covered.tokens.insert(jti.clone(), expires);
                }
                Revocation::Session { sid } => {
                    covered.sessions.insert(sid.clone(), expires);
                }
                Revocation::Subject { sub, before } => {
                    let slot = covered.subjects.entry(sub.clone()).or_insert((*before, expires));
                    *slot = (slot.0.max(*before), slot.1.max(expires));
                }
                Revocation::Key { kid } => {
                    covered.keys.insert(kid.clone(), expires);
                }
                Revocation::AllBefore { before } => {
                    let slot = covered.all_before.get_or_insert((*before, expires));
                    *slot = (slot.0.max(*before), slot.1.max(expires));
                }
                Revocation::Unknown => tracing::error!(seq = entry.seq, "the revocation feed sent a kind this verifier does not know"),
            }
        }
        if now - covered.purged_at >= PURGE_EVERY_SECONDS {
            covered.tokens.retain(|_, e| *e >= now);
            covered.sessions.retain(|_, e| *e >= now);
            covered.subjects.retain(|_, (_, e)| *e >= now);
            covered.keys.retain(|_, e| *e >= now);
            covered.all_before = covered.all_before.filter(|(_, e)| *e >= now);
            covered.purged_at = now;
        }
    }

    /// Whether an entry covers this token (signed with `kid`).
    pub fn check(&self, claims: &Claims, kid: &str) -> Result<(), VerifyError> {
        let covered = self.covered.read().unwrap_or_else(|e| e.into_inner());
        let kind = if covered.tokens.contains_key(&claims.jti) {
            RevocationKind::Token
        } else if claims.sid.as_ref().is_some_and(|sid| covered.sessions.contains_key(sid)) {
            RevocationKind::Session
        } else if covered.subjects.get(&claims.sub).is_some_and(|(before, _)| claims.iat <= *before) {
            RevocationKind::Subject
        } else if covered.keys.contains_key(kid) {
            RevocationKind::Key
        } else if covered.all_before.is_some_and(|(before, _)| claims.iat <= before) {
            RevocationKind::AllBefore
        } else {
            return Ok(());
        };
        Err(VerifyError::Revoked(kind))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(jti: &str, sid: Option<&str>, sub: &str, iat: i64) -> Claims {
        serde_json::from_value(json!({
            "iss": "i", "sub": sub, "aud": "a", "exp": iat + 600, "iat": iat, "jti": jti, "client_id": "c", "sid": sid
        }))
        .unwrap()
    }

    fn entries(json: serde_json::Value) -> Vec<RevocationEntry> {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn each_kind_covers_what_the_server_means() {
        let mirror = RevocationMirror::default();
        mirror.apply(
            &entries(json!([
                {"seq": 1, "kind": "token", "jti": "dead", "expires_at": 2_000},
                {"seq": 2, "kind": "session", "sid": "s-ended", "expires_at": 2_000},
                {"seq": 3, "kind": "subject", "sub": "bob", "before": 1_000, "expires_at": 2_000},
                {"seq": 4, "kind": "key", "kid": "k-withdrawn", "expires_at": 2_000},
            ])),
            500,
        );
        let revoked = |claims: &Claims, kid: &str| mirror.check(claims, kid).err();
        assert_eq!(revoked(&claims("dead", None, "alice", 900), "k"), Some(VerifyError::Revoked(RevocationKind::Token)));
        assert_eq!(revoked(&claims("j", Some("s-ended"), "alice", 900), "k"), Some(VerifyError::Revoked(RevocationKind::Session)));
        assert_eq!(revoked(&claims("j", None, "bob", 1_000), "k"), Some(VerifyError::Revoked(RevocationKind::Subject)));
        assert_eq!(revoked(&claims("j", None, "alice", 900), "k-withdrawn"), Some(VerifyError::Revoked(RevocationKind::Key)));
        // Issued after the subject's instant, another session, another key: live.
        assert_eq!(revoked(&claims("j", None, "bob", 1_001), "k"), None);
        assert_eq!(revoked(&claims("j", Some("s-live"), "alice", 900), "k"), None);
    }

    #[test]
    fn a_global_not_before_refuses_every_token_issued_by_then() {
        let mirror = RevocationMirror::default();
        mirror.apply(&entries(json!([{"seq": 9, "kind": "all_before", "before": 1_000, "expires_at": 9_000}])), 0);
        assert_eq!(mirror.check(&claims("j", Some("s"), "alice", 1_000), "k").err(), Some(VerifyError::Revoked(RevocationKind::AllBefore)));
        assert_eq!(mirror.check(&claims("j", None, "bob", 3), "k").err(), Some(VerifyError::Revoked(RevocationKind::AllBefore)));
        assert!(mirror.check(&claims("j", Some("s"), "alice", 1_001), "k").is_ok(), "issued after the not-before");
    }

    #[test]
    fn a_later_subject_entry_moves_the_instant_forward_never_back() {
        let mirror = RevocationMirror::default();
        let subject = |seq: u64, before: i64| json!({"seq": seq, "kind": "subject", "sub": "bob", "before": before, "expires_at": 9_000});
        mirror.apply(&entries(json!([subject(2, 1_500), subject(1, 1_000)])), 0);
        assert!(mirror.check(&claims("j", None, "bob", 1_400), "k").is_err());
        assert!(mirror.check(&claims("j", None, "bob", 1_501), "k").is_ok());
    }

    #[test]
    fn expired_entries_are_swept_and_unknown_kinds_skipped() {
        let mirror = RevocationMirror::default();
        mirror.apply(
            &entries(json!([
                {"seq": 1, "kind": "token", "jti": "old", "expires_at": 100},
                {"seq": 2, "kind": "device", "device": "d1", "expires_at": 1_000},
                {"seq": 3, "kind": "token", "jti": "new", "expires_at": 1_000},
            ])),
            50,
        );
        assert!(mirror.check(&claims("old", None, "a", 0), "k").is_err());
        mirror.apply(&[], 50 + PURGE_EVERY_SECONDS + 100);
        assert!(mirror.check(&claims("old", None, "a", 0), "k").is_ok());
        assert!(mirror.check(&claims("new", None, "a", 0), "k").is_err());
    }
}
