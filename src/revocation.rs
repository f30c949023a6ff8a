//! The in-memory mirror of the revocation list.
//!
//! Every check — refresh, introspection — is a lookup here, never a wait on
//! the store. The mirror is loaded from the store at start and updated after
//! every durable revocation, so it can only lag the store, never lead it.

use crate::store::{Revocation, RevocationEntry};
use std::collections::HashMap;
use std::sync::RwLock;

/// What a token says about itself, for a revocation check.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    pub jti: &'a str,
    pub sid: Option<&'a str>,
    pub sub: &'a str,
    pub iat: i64,
    pub kid: Option<&'a str>,
}

/// Why a token is revoked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revoked {
    Token,
    Session,
    Subject,
    Key,
}

impl Revoked {
    pub fn describe(self) -> &'static str {
        match self {
            Revoked::Token => "the token was revoked",
            Revoked::Session => "the session was ended",
            Revoked::Subject => "every session of the subject was ended",
            Revoked::Key => "the signing key was withdrawn",
        }
    }
}

#[derive(Debug, Default)]
struct Mirror {
    tokens: HashMap<String, i64>,
    sessions: HashMap<String, i64>,
    /// subject → (revoked at or before this instant, entry expiry)
    subjects: HashMap<String, (i64, i64)>,
    keys: HashMap<String, i64>,
    last_seq: u64,
}

/// The revocation list as every check sees it.
#[derive(Debug, Default)]
pub struct RevocationList(RwLock<Mirror>);

impl RevocationList {
    pub fn new() -> Self {
        Self::default()
    }

    /// Add entries (idempotent; entries may arrive more than once).
    pub fn apply(&self, entries: &[RevocationEntry]) {
        let mut mirror = self.0.write().unwrap_or_else(|e| e.into_inner());
        for entry in entries {
            let expires = entry.expires_at;
            match &entry.revocation {
                Revocation::Token { jti } => {
                    mirror.tokens.insert(jti.clone(), expires);
                }
                Revocation::Session { sid } => {
                    mirror.sessions.insert(sid.clone(), expires);
                }
                Revocation::Subject { sub, before } => {
                    let slot = mirror.subjects.entry(sub.clone()).or_insert((*before, expires));
                    *slot = (slot.0.max(*before), slot.1.max(expires));
                }
                Revocation::Key { kid } => {
                    mirror.keys.insert(kid.clone(), expires);
                }
            }
            mirror.last_seq = mirror.last_seq.max(entry.seq);
        }
    }

    /// Whether any entry covers this token.
    pub fn check(&self, token: TokenFacts<'_>) -> Option<Revoked> {
        let mirror = self.0.read().unwrap_or_else(|e| e.into_inner());
        if mirror.tokens.contains_key(token.jti) {
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
        None
    }

    pub fn session_revoked(&self, sid: &str) -> bool {
        self.0.read().unwrap_or_else(|e| e.into_inner()).sessions.contains_key(sid)
    }

    /// Drop entries that expired before `now`.
    pub fn purge(&self, now: i64) {
        let mut mirror = self.0.write().unwrap_or_else(|e| e.into_inner());
        mirror.tokens.retain(|_, e| *e >= now);
        mirror.sessions.retain(|_, e| *e >= now);
        mirror.subjects.retain(|_, (_, e)| *e >= now);
        mirror.keys.retain(|_, e| *e >= now);
    }

    /// The highest sequence number applied.
    pub fn last_seq(&self) -> u64 {
        self.0.read().unwrap_or_else(|e| e.into_inner()).last_seq
    }

    pub fn len(&self) -> usize {
        let m = self.0.read().unwrap_or_else(|e| e.into_inner());
        m.tokens.len() + m.sessions.len() + m.subjects.len() + m.keys.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64, revocation: Revocation) -> RevocationEntry {
        RevocationEntry { seq, revocation, expires_at: 1_000 }
    }

    fn facts<'a>(jti: &'a str, sid: Option<&'a str>, sub: &'a str, iat: i64) -> TokenFacts<'a> {
        TokenFacts { jti, sid, sub, iat, kid: Some("k1") }
    }

    #[test]
    fn each_kind_of_entry_revokes_what_it_covers() {
        let list = RevocationList::new();
        list.apply(&[
            entry(1, Revocation::Token { jti: "t".into() }),
            entry(2, Revocation::Session { sid: "s".into() }),
            entry(3, Revocation::Subject { sub: "alice".into(), before: 100 }),
        ]);
        assert_eq!(list.check(facts("t", None, "bob", 0)), Some(Revoked::Token));
        assert_eq!(list.check(facts("x", Some("s"), "bob", 0)), Some(Revoked::Session));
        assert_eq!(list.check(facts("x", None, "alice", 100)), Some(Revoked::Subject));
        assert_eq!(list.check(facts("x", None, "alice", 101)), None, "issued after logout-everywhere");
        assert_eq!(list.check(facts("x", Some("other"), "bob", 0)), None);
        list.apply(&[entry(4, Revocation::Key { kid: "k1".into() })]);
        assert_eq!(list.check(facts("x", None, "bob", 0)), Some(Revoked::Key));
        assert_eq!(list.last_seq(), 4);
    }

    #[test]
    fn entries_leave_when_they_expire() {
        let list = RevocationList::new();
        list.apply(&[entry(1, Revocation::Token { jti: "t".into() })]);
        list.purge(1_000);
        assert_eq!(list.len(), 1);
        list.purge(1_001);
        assert!(list.is_empty());
    }
}
