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
//! | [`dpop`] | DPoP (RFC 9449): proofs at the token endpoint, key binding, nonces |
//! | [`app`] | the composition root: builds the service, owns its background tasks |
//! | [`authority`] | what every rule works with; introspection and RFC 7009 revocation |
//! | [`grants`] | the token endpoint's grants, one file each, one dispatcher |
//! | [`sessions`] | session creation, the browser handoff code, logout, the session index |
//! | [`store`] | the only server state: revocations, consumed refresh tokens |
//! | [`revocations`] | the revocation list: its types, the in-memory mirror, the feed |
//! | [`metrics`] | Prometheus counters and histograms |
//! | [`telemetry`] | logging set-up: text or JSON lines |
//! | [`http`] | the axum router and the error mapping |
//! | [`json`] | JSON written member by member, and read back, on the hot paths |
//! | [`cli`] | the `tessera` command line, one file per subcommand |
//!
//! Two crates of the workspace sit beside it: `tessera-jose`, the JOSE core
//! (algorithms, compact JWS on ring, JWKs and thumbprints, the claim-time
//! check) the server and the verifier share, and `tessera-verifier`, the
//! offline verification library for services, which depends on nothing of
//! the server.

pub mod app;
pub mod authority;
pub mod cli;
pub mod clients;
pub mod clock;
pub mod config;
pub mod dpop;
pub mod grants;
pub mod http;
pub mod json;
pub mod keys;
pub mod metrics;
pub mod revocations;

pub mod sessions;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod urlencoded;
