//! The revocation feed: the revocation list, signed, for offline verifiers.
//!
//! Offline verification cannot see a revocation until the access token
//! expires — unless the verifier follows this feed. `GET /v1/revocations`
//! answers a JWT (`typ: revocations+jwt`) signed by the active service key,
//! so a cache or CDN can carry it and a verifier checks it with the same
//! JWKS it uses for access tokens; its explicit `typ` keeps it from ever
//! passing for an access token (RFC 8725 §3.11). `GET /v1/revocations/stream`
//! pushes each entry as a Server-Sent Event the moment it is recorded.
//!
//! Cursors are the entries' sequence numbers; the feed never publishes past
//! the mirror's watermark, so resuming after a cursor never skips an entry.
//! A document is one page of at most `limit` entries: `more` says whether
//! the next page (`?after=cursor`) holds more, so no document grows with the
//! list and a verifier can start whatever its size. Each page is signed once
//! per change of the list ([`super::pages`]).

use crate::keys::SigningKey;
use crate::revocations::Page;
use crate::revocations::RevocationEntry;
use crate::tokens::access::compact_jws;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The `typ` of a signed feed document.
pub const FEED_TYPE: &str = tessera_jose::typ::REVOCATIONS_JWT;

/// How long a signed feed document may be relied on.
pub const FEED_LIFETIME_SECONDS: i64 = 300;

/// The claims of a feed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedDocument {
    pub iss: String,
    pub iat: i64,
    pub exp: i64,
    /// The cursor the entries follow (0: this is the full list).
    pub after: u64,
    /// Resume from here: `?after=cursor`.
    pub cursor: u64,
    /// Whether more entries follow this page (ask again from `cursor`).
    pub more: bool,
    pub revocations: Vec<RevocationEntry>,
}

/// Sign one page of the feed, the entries after `after`, with `key`.
pub fn sign(key: &SigningKey, issuer: &str, after: u64, page: Page, now: DateTime<Utc>) -> String {
    let header = tessera_jose::Header::new(key.alg, key.kid.as_str(), FEED_TYPE).encode();
    let iat = now.timestamp();
    let document = FeedDocument {
        iss: issuer.to_string(),
        iat,
        exp: iat + FEED_LIFETIME_SECONDS,
        after,
        cursor: page.cursor,
        more: page.more,
        revocations: page.entries,
    };
    compact_jws(key, &header, &serde_json::to_vec(&document).expect("feed serializes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keys::{KeyDirectory, Keyring, SigningAlgorithm, TokenLifetimes};
    use crate::revocations::Covers;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_feed_document_verifies_with_the_jwks_and_is_not_an_access_token() {
        tessera_jose::jsonwebtoken_provider::install();
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        let directory = KeyDirectory::new(dir.path());
        directory.generate_signing(SigningAlgorithm::ES256, clock.now(), clock.now()).unwrap();
        let lifetimes = TokenLifetimes { access: Duration::from_secs(600), refresh: Duration::from_secs(600) };
        let keyring = Keyring::open(directory, lifetimes, clock.clone()).unwrap();
        let view = keyring.view();
        let entries = vec![RevocationEntry { seq: 3, covers: Covers::Session { sid: "s".into() }, expires_at: 1_800_000_900 }];
        let page = Page { entries: entries.clone(), cursor: 3, more: true, version: Default::default() };
        let token = sign(view.active_signer(clock.now()).unwrap(), "https://issuer.test", 2, page, clock.now());

        let jwks: serde_json::Value = serde_json::from_slice(&view.jwks().body).unwrap();
        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_value(jwks["keys"][0].clone()).unwrap();
        let mut validation = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.validate_exp = false;
        validation.set_required_spec_claims(&["iss"]);
        let decoded =
            jsonwebtoken::decode::<FeedDocument>(&token, &jsonwebtoken::DecodingKey::from_jwk(&jwk).unwrap(), &validation).unwrap();
        assert_eq!(decoded.header.typ.as_deref(), Some(FEED_TYPE));
        assert_eq!(decoded.claims.revocations, entries);
        assert_eq!(decoded.claims.cursor, 3);
        assert!(decoded.claims.more);
        let as_access = crate::tokens::access::check(&token, &view, "https://issuer.test", 0, clock.now());
        assert_eq!(as_access.unwrap_err(), crate::tokens::access::AccessTokenError::WrongType);
    }
}
