//! The offline verifier, `tessera-verifier`, against the real tessera: one
//! test binary, one module per concern.
//!
//! | module | what it holds the verifier to |
//! |---|---|
//! | `tokens` | tokens from the binary verify; each refused one gets its error |
//! | `not_before` | `nbf` means the same to introspection, `token inspect` and the verifier |
//! | `cache` | the verified-token cache: hits, and logout, expiry and key withdrawal refusing cached tokens |
//! | `jwks` | the JWKS cache: cooldown, outage, ETag, key removal, the caller's HTTP client |
//! | `feed` | the revocation feed: live stream, catching up, polling, private feeds |
//! | `layer` | the tower layer and axum extractor: RFC 6750 answers |
//! | `dpop` | DPoP-bound tokens: `verify_dpop`, bound tokens refused as Bearer, RFC 9449 §7.1 answers, nonces |

mod cache;
#[path = "../server/helpers/mod.rs"]
#[allow(dead_code)] // the verifier tests use a few of the server tests' helpers
mod common;
mod dpop;
mod feed;
mod jwks;
mod layer;
mod not_before;
mod tokens;
