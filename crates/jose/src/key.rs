//! Keys on ring: a private [`KeyPair`] that signs, a [`PublicKey`] that
//! verifies, each bound to one [`Algorithm`] when it is made.
//!
//! Binding the algorithm to the key is what RFC 8725 §3.1 asks: whoever
//! checks a signature asks the key how, never the token. Keys are parsed
//! once and kept — ring parses an ES256 PKCS#8 key in about the time it
//! takes to sign, so re-parsing per token would nearly double the cost. A
//! key pair also knows its public JWK members, so the key directory can
//! publish it and compute its RFC 7638 thumbprint without re-deriving them.
//!
//! Generating keys is here for the curves ring can generate; ring cannot
//! generate RSA keys, so that stays with the caller (tessera runs openssl).

use crate::Algorithm;
use crate::jwk;
use crate::jws::Signer;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair as _, RsaKeyPair, RsaPublicKeyComponents, UnparsedPublicKey};

/// Why a private key could not be used or made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// The PKCS#8 document is not a key of the algorithm, or is too weak;
    /// the reason is ring's (or the size rule's).
    #[error("{0}")]
    Rejected(String),
    /// ring cannot generate keys for this algorithm (RSA).
    #[error("ring cannot generate {0} keys")]
    CannotGenerate(Algorithm),
}

/// The ring form of a public key.
#[derive(Clone)]
enum Verifying {
    /// An uncompressed SEC1 EC point or an Ed25519 key, bound to its ring algorithm.
    Point(UnparsedPublicKey<Vec<u8>>),
    Rsa(RsaPublicKeyComponents<Vec<u8>>, &'static signature::RsaParameters),
}

/// A public key that checks signatures with its own algorithm.
#[derive(Clone)]
pub struct PublicKey {
    alg: Algorithm,
    key: Verifying,
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PublicKey").field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl PublicKey {
    /// An EC point (`04 || x || y`) for ES256/ES384 or a raw Ed25519 key
    /// for EdDSA; lengths are checked by the caller.
    pub(crate) fn point(alg: Algorithm, bytes: Vec<u8>) -> Self {
        let ring_alg: &'static dyn signature::VerificationAlgorithm = match alg {
            Algorithm::ES256 => &signature::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &signature::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &signature::ED25519,
            Algorithm::RS256 | Algorithm::PS256 => unreachable!("RSA keys are made by PublicKey::rsa"),
        };
        Self { alg, key: Verifying::Point(UnparsedPublicKey::new(ring_alg, bytes)) }
    }

    /// An RSA key for RS256 or PS256 from its modulus and exponent; leading
    /// zero bytes, which some encoders keep, are dropped.
    pub(crate) fn rsa(alg: Algorithm, n: Vec<u8>, e: Vec<u8>) -> Option<Self> {
        let parameters: &'static signature::RsaParameters = match alg {
            Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
            _ => return None,
        };
        let minimal = |bytes: Vec<u8>| bytes.into_iter().skip_while(|b| *b == 0).collect::<Vec<u8>>();
        Some(Self { alg, key: Verifying::Rsa(RsaPublicKeyComponents { n: minimal(n), e: minimal(e) }, parameters) })
    }

    /// The key's algorithm, the only one it verifies with.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Whether `signature` is this key's signature over `message`.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            Verifying::Point(key) => key.verify(message, signature).is_ok(),
            Verifying::Rsa(key, parameters) => key.verify(parameters, message, signature).is_ok(),
        }
    }
}

enum Signing {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

/// A parsed private key: signs with its algorithm, knows its public key
/// and its public JWK members.
pub struct KeyPair {
    alg: Algorithm,
    signing: Signing,
    public: PublicKey,
    members: Vec<(&'static str, String)>,
    rng: SystemRandom,
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair").field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl KeyPair {
    /// Parse a PKCS#8 (DER) private key for `alg`. RSA keys must have at
    /// least 2048 bits.
    pub fn from_pkcs8(alg: Algorithm, der: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let rejected = |error: ring::error::KeyRejected| KeyError::Rejected(error.to_string());
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (signing, public, members) = match alg {
            Algorithm::ES256 | Algorithm::ES384 => {
                let (ring_alg, crv, size) = if alg == Algorithm::ES256 {
                    (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
                } else {
                    (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
                };
                let pair = EcdsaKeyPair::from_pkcs8(ring_alg, der, &rng).map_err(rejected)?;
                let point = pair.public_key().as_ref().to_vec();
                let (x, y) = point[1..].split_at(size);
                let members = vec![("crv", crv.to_string()), ("kty", "EC".into()), ("x", b64(x)), ("y", b64(y))];
                (Signing::Ecdsa(pair), PublicKey::point(alg, point), members)
            }
            Algorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(rejected)?;
                let x = pair.public_key().as_ref().to_vec();
                let members = vec![("crv", "Ed25519".into()), ("kty", "OKP".into()), ("x", b64(&x))];
                (Signing::Ed25519(pair), PublicKey::point(alg, x), members)
            }
            Algorithm::RS256 | Algorithm::PS256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(rejected)?;
                if pair.public().modulus_len() < 256 {
                    return Err(KeyError::Rejected("RSA keys must be at least 2048 bits".into()));
                }
                let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                let members = vec![("e", b64(&components.e)), ("kty", "RSA".into()), ("n", b64(&components.n))];
                let public = PublicKey::rsa(alg, components.n, components.e).expect("an RSA algorithm");
                let encoding: &'static dyn signature::RsaEncoding =
                    if alg == Algorithm::RS256 { &signature::RSA_PKCS1_SHA256 } else { &signature::RSA_PSS_SHA256 };
                (Signing::Rsa(pair, encoding), public, members)
            }
        };
        Ok(Self { alg, signing, public, members, rng })
    }

    /// A new private key for `alg`, as PKCS#8 DER. ring cannot generate
    /// RSA keys: RS256 and PS256 answer [`KeyError::CannotGenerate`].
    pub fn generate_pkcs8(alg: Algorithm) -> Result<Vec<u8>, KeyError> {
        let rng = SystemRandom::new();
        let failed = |e: ring::error::Unspecified| KeyError::Rejected(e.to_string());
        let document = match alg {
            Algorithm::ES256 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(failed)?,
            Algorithm::ES384 => EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng).map_err(failed)?,
            Algorithm::EdDSA => Ed25519KeyPair::generate_pkcs8(&rng).map_err(failed)?,
            Algorithm::RS256 | Algorithm::PS256 => return Err(KeyError::CannotGenerate(alg)),
        };
        Ok(document.as_ref().to_vec())
    }

    /// The key's algorithm.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// Sign `message` (a JWS signing input) with the key's algorithm.
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.signing {
            Signing::Ecdsa(pair) => pair.sign(&self.rng, message).expect("ECDSA signing with a valid key").as_ref().to_vec(),
            Signing::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Signing::Rsa(pair, encoding) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(*encoding, &self.rng, message, &mut out).expect("RSA signing with a valid key");
                out
            }
        }
    }

    /// The public half, which verifies this key's signatures.
    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    /// The public JWK members RFC 7638 requires (`crv`/`kty`/`x`/`y`,
    /// `kty`/`x` or `e`/`kty`/`n`), sorted by name; never a private one.
    pub fn public_members(&self) -> &[(&'static str, String)] {
        &self.members
    }

    /// The RFC 7638 thumbprint of the public key: tessera's `kid`.
    pub fn thumbprint(&self) -> String {
        jwk::thumbprint(&self.members)
    }

    /// The public JWK as JSON: the public members plus `kid`, `alg` and
    /// `use: "sig"`.
    pub fn public_jwk_json(&self, kid: &str) -> String {
        jwk::render_public(&self.members, kid, self.alg)
    }
}

impl Signer for KeyPair {
    fn sign(&self, signing_input: &[u8]) -> Vec<u8> {
        KeyPair::sign(self, signing_input)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_keys_sign_what_their_public_key_verifies() {
        for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
            let pair = KeyPair::from_pkcs8(alg, &KeyPair::generate_pkcs8(alg).unwrap()).unwrap();
            let signature = pair.sign(b"message");
            assert_eq!(pair.public_key().alg(), alg);
            assert!(pair.public_key().verify(b"message", &signature), "{alg}");
            assert!(!pair.public_key().verify(b"massage", &signature), "{alg}");
            let jwk: serde_json::Value = serde_json::from_str(&pair.public_jwk_json("k1")).unwrap();
            assert!(jwk.get("d").is_none(), "{alg}: private member published");
            assert_eq!((jwk["kid"].as_str(), jwk["alg"].as_str(), jwk["use"].as_str()), (Some("k1"), Some(alg.as_str()), Some("sig")));
        }
    }

    #[test]
    fn a_key_of_another_algorithm_is_rejected_and_rsa_is_not_generated() {
        let es256 = KeyPair::generate_pkcs8(Algorithm::ES256).unwrap();
        assert!(matches!(KeyPair::from_pkcs8(Algorithm::ES384, &es256), Err(KeyError::Rejected(_))));
        assert!(matches!(KeyPair::from_pkcs8(Algorithm::EdDSA, &es256), Err(KeyError::Rejected(_))));
        assert!(matches!(KeyPair::from_pkcs8(Algorithm::RS256, &es256), Err(KeyError::Rejected(_))));
        assert_eq!(KeyPair::generate_pkcs8(Algorithm::PS256).unwrap_err(), KeyError::CannotGenerate(Algorithm::PS256));
    }
}
