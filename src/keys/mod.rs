//! Keys: the key directory, each key's lifecycle, the JWKS, and the ring
//! `CryptoProvider` for jsonwebtoken.
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
pub mod provider;
pub mod rotation;
pub mod schedule;

pub use directory::{KeyDirectory, KeyDirectoryError};
pub use keyring::{Jwks, KeyView, Keyring};
pub use material::{MacKey, SigningKey};
pub use schedule::{KeyMeta, KeyState, KeyUse, TokenLifetimes};

/// The asymmetric algorithms tessera signs access tokens with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum SigningAlgorithm {
    ES256,
    ES384,
    EdDSA,
    RS256,
    PS256,
}

impl SigningAlgorithm {
    pub const NAMES: [&'static str; 5] = ["ES256", "ES384", "EdDSA", "RS256", "PS256"];

    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "ES256" => Some(Self::ES256),
            "ES384" => Some(Self::ES384),
            "EdDSA" => Some(Self::EdDSA),
            "RS256" => Some(Self::RS256),
            "PS256" => Some(Self::PS256),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::ES256 => "ES256",
            Self::ES384 => "ES384",
            Self::EdDSA => "EdDSA",
            Self::RS256 => "RS256",
            Self::PS256 => "PS256",
        }
    }

    pub fn to_jsonwebtoken(self) -> jsonwebtoken::Algorithm {
        match self {
            Self::ES256 => jsonwebtoken::Algorithm::ES256,
            Self::ES384 => jsonwebtoken::Algorithm::ES384,
            Self::EdDSA => jsonwebtoken::Algorithm::EdDSA,
            Self::RS256 => jsonwebtoken::Algorithm::RS256,
            Self::PS256 => jsonwebtoken::Algorithm::PS256,
        }
    }
}

impl std::fmt::Display for SigningAlgorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
