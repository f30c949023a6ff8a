//! tessera — a stateless JWT token service.
//!
//! It signs short-lived RFC 9068 access tokens and rotating refresh tokens,
//! and publishes its public keys as a JWKS so that anyone can verify its
//! tokens offline. The module map is the architecture:
//!
//! | module | owns |
//! |---|---|
//! | [`config`] | the TOML file + `TESSERA_*` overrides, validated at start |
//! | [`clock`] | time as an input, so lifecycle rules are testable |
//! | [`clients`] | OAuth clients and their authentication |
//! | [`keys`] | the key directory, key lifecycle, JWKS |
//! | [`tokens`] | access-token and refresh-token formats |
//! | [`sessions`] | the rules: who gets which token, rotation, revocation |
//! | [`store`] | the only server state: revocations, consumed refresh tokens |
//! | [`revocation`] | the in-memory mirror of the revocation list |
//! | [`metrics`] | Prometheus counters and histograms |
//! | [`feed`] | the signed revocation feed for offline verifiers |
//! | [`http`] | the axum router and the error mapping |
//! | [`server`] | start-up and graceful shutdown |
//! | [`cli`] | the `tessera` command line |
//!
//! Two crates of the workspace sit beside it: `tessera-jose`, the JOSE core
//! (algorithms, compact JWS on ring, JWKs and thumbprints, the claim-time
//! check) the server and the verifier share, and `tessera-verifier`, the
//! offline verification library for services, which depends on nothing of
//! the server.

#[cfg(feature = "server")]
pub mod cli;
#[cfg(feature = "server")]
pub mod clients;
#[cfg(feature = "server")]
pub mod clock;
#[cfg(feature = "server")]
pub mod config;
#[cfg(feature = "server")]
pub mod feed;
#[cfg(feature = "server")]
pub mod http;
#[cfg(feature = "server")]
pub mod keys;
#[cfg(feature = "server")]
pub mod metrics;
#[cfg(feature = "server")]
pub mod revocation;
#[cfg(feature = "server")]
pub mod server;
#[cfg(feature = "server")]
pub mod sessions;
#[cfg(feature = "server")]
pub mod store;
#[cfg(feature = "server")]
pub mod tokens;
