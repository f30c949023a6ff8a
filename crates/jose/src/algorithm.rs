//! The JWS algorithms tessera signs and verifies with (RFC 7518 §3.1,
//! RFC 8037 §3.1), and nothing else.
//!
//! One type for both sides: the server's configuration and key directory
//! name an [`Algorithm`], the verifier's allow-list is a list of them, and
//! a key's algorithm is fixed by the key, never read from a token. All of
//! them are asymmetric, so no public key can ever be taken for an HMAC
//! secret. The names are the JOSE ones, so they round-trip through config
//! files, key metadata, JWKs and JWS headers unchanged.

use serde::{Deserialize, Serialize};

/// A JWS signature algorithm: ECDSA on P-256 or P-384, Ed25519, or RSA with
/// PKCS#1 v1.5 or PSS padding over SHA-256.
///
/// Non-exhaustive: a later version may add an algorithm (ES512, Ed448)
/// without breaking code that matches on this one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256 (RFC 7518 §3.4).
    ES256,
    /// ECDSA with P-384 and SHA-384 (RFC 7518 §3.4).
    ES384,
    /// Ed25519 (RFC 8037 §3.1).
    EdDSA,
    /// RSASSA-PKCS1-v1_5 with SHA-256 (RFC 7518 §3.3).
    RS256,
    /// RSASSA-PSS with SHA-256 and MGF1 with SHA-256 (RFC 7518 §3.5).
    PS256,
}

impl Algorithm {
    /// Every algorithm implemented here, in the order tessera prefers them.
    pub const ALL: [Algorithm; 5] = [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA, Algorithm::RS256, Algorithm::PS256];

    /// The JOSE names of [`Algorithm::ALL`], for messages that list them.
    pub const NAMES: [&'static str; 5] = {
        let mut names = [""; 5];
        let mut index = 0;
        while index < names.len() {
            names[index] = Self::ALL[index].as_str();
            index += 1;
        }
        names
    };

    /// The JOSE name, as in a JWK's or a JWS header's `alg`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
        }
    }

    /// The algorithm with this JOSE name (case-sensitive, as RFC 7515 §4.1.1
    /// has it); `None` for any other, `none` and the HMAC ones included.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_nothing_else_parses() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::parse(alg.as_str()), Some(alg));
            assert_eq!(alg.to_string(), alg.as_str());
            assert_eq!(serde_json::to_value(alg).unwrap(), alg.as_str());
        }
        assert_eq!(Algorithm::NAMES, ["ES256", "ES384", "EdDSA", "RS256", "PS256"]);
        for other in ["none", "HS256", "es256", "ES512", "Ed25519", ""] {
            assert_eq!(Algorithm::parse(other), None, "{other}");
        }
    }
}
