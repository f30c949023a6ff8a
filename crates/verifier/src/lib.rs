//! Offline verification of tessera's access tokens, for the services that
//! receive them.
//!
//! ```no_run
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! use tessera_verifier::Verifier;
//! let verifier = Verifier::builder().issuer("https://auth.example.com").audience("orders-api").build().await?;
//! # let token = "";
//! let claims = verifier.verify(token).await?;
//! println!("{} may {:?}", claims.sub, claims.scopes().collect::<Vec<_>>());
//! # Ok(()) }
//! ```
//!
//! What it owns, one module each:
//!
//! | module | owns |
//! |---|---|
//! | `builder` | configuration, discovery, the first load |
//! | `jwks` | the key cache: Cache-Control, ETag, refresh, unknown-kid cooldown |
//! | `token` | the checks on an access token, in order, and [`VerifyError`] |
//! | `claims` | [`Claims`] and the issuer, audience and time checks |
//! | `revocations` | the in-memory copy of the revocation list |
//! | `feed` + `sse` | following the revocation feed (SSE, polling as fallback) |
//! | `fetch` | HTTP to the issuer: bounded requests, [`FetchError`] |
//! | `layer` | the tower layer and axum extractor for bearer tokens |
//!
//! The JOSE itself — algorithms, compact JWS, JWKs, the claim-time check —
//! is [`tessera_jose`]'s, the same code the tessera server checks its
//! tokens with, so a token the server calls active and one this library
//! accepts are the same tokens.
//!
//! Verification of a token signed by a known key never waits: keys and
//! revocations are in memory, behind locks held only to read them. Network
//! work happens in two background tasks (JWKS refresh, feed), which end
//! when the last clone of the [`Verifier`] is dropped, and on the cold path
//! of [`Verifier::verify`] when a token names a kid not seen yet.
//!
//! Requests go through a [`reqwest::Client`] of its own, or through the
//! caller's ([`VerifierBuilder::http_client`]): a proxy, extra root
//! certificates, a user agent. reqwest is re-exported so that the client
//! is built with the very version this crate uses.

#![deny(missing_docs)]

mod builder;
mod claims;
mod feed;
mod fetch;
mod jwks;
mod layer;
mod revocations;
mod sse;
mod token;

pub use builder::{BuildError, VerifierBuilder};
pub use claims::Claims;
pub use fetch::FetchError;
pub use layer::{MissingLayer, RequireBearer, RequireBearerService, VerifiedToken};
pub use reqwest;
pub use revocations::RevocationKind;
pub use tessera_jose::Algorithm;
pub use token::VerifyError;

use jwks::JwksCache;
use revocations::RevocationMirror;
use std::sync::Arc;
use token::Policy;

/// Verifies access tokens; cheap to clone (all clones share one cache).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Arc<Policy>,
    jwks: Arc<JwksCache>,
    revocations: Option<Arc<RevocationMirror>>,
    /// Dropping it ends the background tasks.
    _stop: tokio::sync::watch::Sender<()>,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let policy = &self.inner.policy;
        f.debug_struct("Verifier")
            .field("issuer", &policy.issuer)
            .field("audiences", &policy.audiences)
            .field("follows_revocations", &self.inner.revocations.is_some())
            .finish_non_exhaustive()
    }
}

impl Verifier {
    /// Start configuring a verifier: at least [`issuer`](VerifierBuilder::issuer)
    /// and one [`audience`](VerifierBuilder::audience), then
    /// [`build`](VerifierBuilder::build).
    pub fn builder() -> VerifierBuilder {
        VerifierBuilder::default()
    }

    /// Verify an access token and return its claims. Checks, in order: JWS
    /// shape, `typ`, the key, `alg` (from the key), the signature, `iss`,
    /// `aud`, `exp`/`nbf`/`iat`, revocation. Awaits only if the token names a
    /// kid the cache lacks: then the JWKS is refetched, at most once per
    /// cooldown.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        match self.verify_cached(token) {
            Err(VerifyError::UnknownKey { kid }) => {
                if self.inner.jwks.refetch_for(&kid).await {
                    self.verify_cached(token)
                } else {
                    Err(VerifyError::UnknownKey { kid })
                }
            }
            outcome => outcome,
        }
    }

    /// [`verify`](Self::verify) with the keys at hand, never fetching.
    pub fn verify_cached(&self, token: &str) -> Result<Claims, VerifyError> {
        let inner = &self.inner;
        token::check_access_token(token, &inner.jwks.keys(), &inner.policy, inner.revocations.as_deref(), unix_now())
    }

    /// The audiences this verifier accepts (never empty).
    pub fn audiences(&self) -> &[String] {
        &self.inner.policy.audiences
    }
}

fn unix_now() -> i64 {
    let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
    i64::try_from(since_epoch.as_secs()).unwrap_or(i64::MAX)
}

/// Entry points for the fuzz targets in the repository's `fuzz/` folder;
/// not part of the API and not covered by semver.
#[doc(hidden)]
pub mod fuzzing {
    /// Decode `chunks` as one Server-Sent Events stream; how many complete
    /// events it held, or why it was refused.
    pub fn decode_sse(chunks: &[&[u8]]) -> Result<usize, &'static str> {
        let mut decoder = crate::sse::SseDecoder::default();
        let mut events = Vec::new();
        for chunk in chunks {
            decoder.push(chunk, &mut events)?;
        }
        Ok(events.len())
    }
}
