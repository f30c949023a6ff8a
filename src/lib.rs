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
//! | [`keys`] | the key directory, key lifecycle, JWKS, the ring provider |
//! | [`tokens`] | access-token and refresh-token formats |
//! | [`sessions`] | the rules: who gets which token, rotation, revocation |
//! | [`store`] | the only server state: revocations, consumed refresh tokens |
//! | [`revocation`] | the in-memory mirror of the revocation list |
//! | [`metrics`] | Prometheus counters and histograms |
//! | [`feed`] | the signed revocation feed for offline verifiers |
//! | [`http`] | the axum router and the error mapping |
//! | [`server`] | start-up and graceful shutdown |
//! | [`cli`] | the `tessera` command line |

pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod feed;
pub mod http;
pub mod keys;
pub mod metrics;
pub mod revocation;
pub mod server;
pub mod sessions;
pub mod store;
pub mod tokens;
