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
//! | `cache` | the verified-token cache: a token seen before skips its signature check, never the others |
//! | `claims` | [`Claims`] and the issuer, audience and time checks |
//! | `revocations` | the in-memory copy of the revocation list |
//! | `feed` + `sse` | following the revocation feed (SSE, polling as fallback) |
//! | `fetch` | HTTP to the issuer: bounded requests, [`FetchError`] |
//! | `dpop` | DPoP-bound tokens (RFC 9449 §7): proof policy, the `jti` replay cache |
//! | `layer` | the tower layer and axum extractor for bearer and DPoP tokens |
//! | `challenge` | what a request presents; `WWW-Authenticate` answers (RFC 6750, RFC 9449 §7.1) |
//!
//! The JOSE itself — algorithms, compact JWS, JWKs, the claim-time check —
//! is [`tessera_jose`]'s, the same code the tessera server checks its
//! tokens with, so a token the server calls active and one this library
//! accepts are the same tokens.
//!
//! Verification of a token signed by a known key never waits: keys and
//! revocations are in memory, behind locks held only to read them. A token
//! seen before costs a SHA-256 and a lookup instead of a signature check
//! ([`VerifierBuilder::verified_cache`]); its claims, time and revocation
//! are checked again on every call. Network work happens in two background
//! tasks (JWKS refresh, feed), which end when the last clone of the
//! [`Verifier`] is dropped, and on the cold path of [`Verifier::verify`]
//! when a token names a kid not seen yet.
//!
//! Requests go through a [`reqwest::Client`] of its own, or through the
//! caller's ([`VerifierBuilder::http_client`]): a proxy, extra root
//! certificates, a user agent. reqwest is re-exported so that the client
//! is built with the very version this crate uses.

#![deny(missing_docs)]

mod builder;
mod cache;
mod challenge;
mod claims;
mod dpop;
mod feed;
mod fetch;
mod jwks;
mod layer;
mod revocations;
mod sse;
mod token;

pub use builder::{BuildError, VerifierBuilder};
pub use cache::VerifiedCacheStats;
pub use claims::{Claims, Confirmation};
pub use fetch::FetchError;
pub use layer::{MissingLayer, RequireBearer, RequireBearerService, VerifiedToken};
pub use reqwest;
pub use revocations::RevocationKind;
pub use tessera_jose::Algorithm;
pub use token::VerifyError;

use cache::VerifiedTokens;
use jwks::JwksCache;
use revocations::RevocationMirror;
use std::sync::Arc;
use token::Policy;

/// Verifies access tokens; cheap to clone (all clones share one set of
/// caches).
#[derive(Clone)]
pub struct Verifier {
    inner: Arc<Inner>,
}

struct Inner {
    policy: Arc<Policy>,
    dpop: dpop::DpopPolicy,
    jwks: Arc<JwksCache>,
    revocations: Option<Arc<RevocationMirror>>,
    /// `None` when turned off.
    verified: Option<VerifiedTokens>,
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

    /// Verify a bearer access token and return its claims. Checks, in
    /// order: JWS shape, `typ`, the key, `alg` (from the key), the
    /// signature, `iss`, `aud`, `exp`/`nbf`/`iat`, revocation, and that the
    /// token is not bound to a DPoP key (such a token needs
    /// [`verify_dpop`](Self::verify_dpop)). Awaits only if the token names a
    /// kid the cache lacks: then the JWKS is refetched, at most once per
    /// cooldown. A token verified before is answered from the verified-token
    /// cache ([`VerifierBuilder::verified_cache`]): everything but the
    /// signature and the decoding is checked again.
    pub async fn verify(&self, token: &str) -> Result<Claims, VerifyError> {
        unbound(self.verify_signed(token).await?)
    }

    /// [`verify`](Self::verify) with the keys at hand, never fetching.
    pub fn verify_cached(&self, token: &str) -> Result<Claims, VerifyError> {
        unbound(self.check_cached(token)?)
    }

    /// Verify a DPoP-bound access token (`Authorization: DPoP <token>`) with
    /// the request's `DPoP` proof, for the request's `method` and absolute
    /// `uri` (scheme and host as the client addressed this service; query
    /// and fragment are ignored). Beyond [`verify`](Self::verify)'s checks
    /// on the token: it must be bound (`cnf.jkt`); the proof must verify
    /// with its own key under an allowed algorithm, name this method and
    /// URI, be fresh, hash this token (`ath`), be signed by the key the
    /// token is bound to, carry a current nonce when nonces are required,
    /// and never have been seen before. The verified-token cache answers
    /// only for the token; the proof is checked every time.
    pub async fn verify_dpop(&self, token: &str, proof: &str, method: &str, uri: &str) -> Result<Claims, VerifyError> {
        let claims = self.verify_signed(token).await?;
        self.inner.dpop.check(&claims, token, proof, method, uri, unix_now())?;
        Ok(claims)
    }

    /// A fresh nonce for a `DPoP-Nonce` response header, when this
    /// verifier requires nonces ([`VerifierBuilder::dpop_nonces`]).
    pub fn dpop_nonce(&self) -> Option<String> {
        self.inner.dpop.nonce(unix_now())
    }

    /// The algorithms DPoP proofs may be signed with, for the `algs` of a
    /// `WWW-Authenticate: DPoP` challenge.
    pub fn dpop_algorithms(&self) -> &[Algorithm] {
        &self.inner.dpop.algorithms
    }

    async fn verify_signed(&self, token: &str) -> Result<Claims, VerifyError> {
        match self.check_cached(token) {
            Err(VerifyError::UnknownKey { kid }) => {
                if self.inner.jwks.refetch_for(&kid).await {
                    self.check_cached(token)
                } else {
                    Err(VerifyError::UnknownKey { kid })
                }
            }
            outcome => outcome,
        }
    }

    fn check_cached(&self, token: &str) -> Result<Claims, VerifyError> {
        let inner = &self.inner;
        let (keys, revocations, now) = (inner.jwks.keys(), inner.revocations.as_deref(), unix_now());
        match &inner.verified {
            Some(verified) => verified.check(token, &keys, &inner.policy, revocations, now),
            None => token::check_access_token(token, &keys, &inner.policy, revocations, now),
        }
    }

    /// How the verified-token cache has been used: hits, misses, entries
    /// held and capacity (all 0 when it is off).
    pub fn verified_cache_stats(&self) -> VerifiedCacheStats {
        self.inner.verified.as_ref().map(VerifiedTokens::stats).unwrap_or_default()
    }

    /// The audiences this verifier accepts (never empty).
    pub fn audiences(&self) -> &[String] {
        &self.inner.policy.audiences
    }
}

/// RFC 9449 §7.2: a bound token is no bearer token.
fn unbound(claims: Claims) -> Result<Claims, VerifyError> {
    if claims.cnf.is_some() { Err(VerifyError::BoundToken) } else { Ok(claims) }
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
