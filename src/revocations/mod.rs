//! The revocation list — tessera's only server state besides consumed
//! refresh tokens — and its vocabulary, used the same way in the code, the
//! store, the feed and README:
//!
//! | word | meaning |
//! |---|---|
//! | [`Covers`] | what one revocation kills: a token, a session, a subject's earlier tokens, a signing key, every earlier token |
//! | [`Revocation`] | a revocation to record: what it covers and until when it matters |
//! | [`RevocationEntry`] | a recorded revocation, numbered by the store (the feed's cursor) |
//! | [`RevocationList`] | the in-memory mirror every check reads |
//! | [`feed::FeedDocument`] | a page of the list, signed, for offline verifiers ([`feed`]) |
//! | [`Page`] | at most a page of entries after a cursor, read from the list |
//! | [`SignedPages`] | signed feed pages, each signed once per change of the list ([`pages`]) |
//! | [`TokenFacts`] | what a token says about itself, for a check |
//! | [`Revoked`] | why a token is dead |
//!
//! The store depends on these types, never the other way round: the list is
//! pure memory, fed by whoever reads the store (start-up, the writer after
//! a durable write, a shared store's follower).

pub mod feed;
mod list;
pub mod pages;

pub use list::{Page, RevocationList, Version};
pub use pages::{SignedPage, SignedPages};

use serde::{Deserialize, Serialize};

/// What a revocation covers.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Covers {
    /// One access or refresh token, by `jti`.
    Token { jti: String },
    /// Every token of one session (logout, detected reuse).
    Session { sid: String },
    /// Every token of a subject issued at or before `before` (logout everywhere).
    Subject { sub: String, before: i64 },
    /// Every token signed by a withdrawn key.
    Key { kid: String },
    /// Every token issued at or before `before`, whoever it belongs to: the
    /// global not-before installed when the store was lost or replaced, so
    /// no session the lost store had ended can come back.
    #[serde(rename = "all_before")]
    Before { before: i64 },
}

/// A revocation to record: what it covers, and the instant (Unix seconds)
/// after which nothing it covers can be valid any more, so it may go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub covers: Covers,
    pub until: i64,
}

impl Revocation {
    pub fn new(covers: Covers, until: i64) -> Self {
        Self { covers, until }
    }
}

/// A revocation as stored, with its sequence number (the feed's cursor) and
/// the instant it stops mattering.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevocationEntry {
    pub seq: u64,
    #[serde(flatten)]
    pub covers: Covers,
    pub expires_at: i64,
}

/// What a token says about itself, for a revocation check.
#[derive(Debug, Clone, Copy)]
pub struct TokenFacts<'a> {
    /// `None` when the check is about a session or subject, not one token.
    pub jti: Option<&'a str>,
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
    /// Issued before the global not-before (the store was replaced).
    Before,
}

impl Revoked {
    pub fn describe(self) -> &'static str {
        match self {
            Revoked::Token => "the token was revoked",
            Revoked::Session => "the session was ended",
            Revoked::Subject => "every session of the subject was ended",
            Revoked::Key => "the signing key was withdrawn",
            Revoked::Before => "the token was issued before the revocation store was replaced; sign in again",
        }
    }
}
