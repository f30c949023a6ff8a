//! Keys: the key directory, each key's lifecycle and the JWKS. The key
//! material itself (algorithms, ring key pairs, JWKs, thumbprints) is
//! tessera-jose's, shared with the verifier.
//!
//! A key is a private key file plus a small metadata file. Its state is a
//! pure function of the clock and those files ([`schedule`]), so replicas
//! sharing a directory agree on which key signs without talking to each
//! other:
//!
//! ```text
//! pending ──activates_at──▶ active ──superseded or retired──▶ retired ──+token lifetime──▶ expired
//! (published, not signing)  (signs)                          (published)                 (not published)
//! ```
//!
//! A key is superseded the moment a newer key of the same use activates, so
//! "the newest activated key signs" needs no coordination either.
//!
//! Signing keys sign access tokens and are published in the JWKS. The
//! refresh-token MAC key (HMAC-SHA256) follows the same lifecycle but is
//! never published.

pub mod directory;
pub mod keyring;
pub mod material;
pub mod rotation;
pub mod schedule;

pub use directory::{KeyDirectory, KeyDirectoryError, STORE_EPOCH_FILE};
pub use keyring::{Jwks, KeyView, Keyring};
pub use material::{MacKey, SigningKey};
pub use schedule::{KeyMeta, KeyState, KeyUse, TokenLifetimes};

/// The asymmetric algorithms tessera signs access tokens with: the JOSE
/// core's one [`tessera_jose::Algorithm`], under the name the server's
/// configuration and key directory have always used.
pub use tessera_jose::Algorithm as SigningAlgorithm;
