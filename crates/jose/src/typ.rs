//! The `typ` header values that keep tessera's kinds of signed document
//! apart (RFC 8725 §3.11): an access token is never a revocation feed
//! document, and the reverse, though both are signed by the same key; a
//! DPoP proof, signed by a client's key, is neither.
//!
//! Each comes with the list a reader accepts: the short form and the full
//! media type, compared case-insensitively (RFC 7515 §4.1.9); the short
//! form is first and is the one tessera writes.

/// RFC 9068 §2.1: the `typ` of a JWT access token.
pub const AT_JWT: &str = "at+jwt";

/// What a reader accepts as [`AT_JWT`].
pub const AT_JWT_TYPES: &[&str] = &[AT_JWT, "application/at+jwt"];

/// The `typ` of tessera's signed revocation feed document.
pub const REVOCATIONS_JWT: &str = "revocations+jwt";

/// What a reader accepts as [`REVOCATIONS_JWT`].
pub const REVOCATIONS_JWT_TYPES: &[&str] = &[REVOCATIONS_JWT, "application/revocations+jwt"];

/// RFC 9449 §4.2: the `typ` of a DPoP proof.
pub const DPOP_JWT: &str = "dpop+jwt";

/// What a reader accepts as [`DPOP_JWT`].
pub const DPOP_JWT_TYPES: &[&str] = &[DPOP_JWT, "application/dpop+jwt"];
