//! JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) turned into ring
//! verification keys — once per JWKS fetch, never per token.
//!
//! A key's algorithm is fixed here, by the key: its `alg` member, or, where
//! the key type alone decides it (`EC` on P-256 or P-384, `OKP` Ed25519),
//! that. An RSA key without `alg` could be RS256 or PS256, so it is skipped
//! rather than guessed. As RFC 7517 §5 asks, a key this verifier cannot use
//! (unknown `kty`, `use` other than `sig`, missing or malformed members, an
//! `alg` its type cannot have) is skipped and the rest of the set still
//! loads.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::signature::{self, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Deserialize;
use std::collections::HashMap;

/// The JWS algorithms a tessera key can have (RFC 7518 §3.1, RFC 8037 §3.1);
/// all asymmetric, so no public key can ever act as an HMAC secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    ES256,
    ES384,
    EdDSA,
    RS256,
    PS256,
}

impl Algorithm {
    /// Every algorithm this verifier implements: the default allow-list.
    pub const ALL: [Algorithm; 5] = [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA, Algorithm::RS256, Algorithm::PS256];

    /// The JOSE name, as in a JWK's or a JWS header's `alg`.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
            Algorithm::RS256 => "RS256",
            Algorithm::PS256 => "PS256",
        }
    }

    fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.as_str() == name)
    }
}

impl std::fmt::Display for Algorithm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The ring form of a public key.
enum PublicKey {
    /// An uncompressed SEC1 EC point or an Ed25519 key, bound to its ring algorithm.
    Point(UnparsedPublicKey<Vec<u8>>),
    Rsa(RsaPublicKeyComponents<Vec<u8>>, &'static signature::RsaParameters),
}

/// One public key from the JWKS, ready to check signatures.
pub(crate) struct VerificationKey {
    pub alg: Algorithm,
    key: PublicKey,
}

impl VerificationKey {
    /// Whether `signature` is this key's signature over `message`, with the
    /// key's own algorithm.
    pub fn verify(&self, message: &[u8], signature: &[u8]) -> bool {
        match &self.key {
            PublicKey::Point(key) => key.verify(message, signature).is_ok(),
            PublicKey::Rsa(key, parameters) => key.verify(parameters, message, signature).is_ok(),
        }
    }
}

/// The usable keys of one JWKS document, by `kid`.
#[derive(Default)]
pub(crate) struct KeySet {
    keys: HashMap<String, VerificationKey>,
}

impl KeySet {
    /// Parse a JWKS document. Fails only if the document itself is not a
    /// JWK Set; unusable keys are skipped (and logged).
    pub fn from_jwks(body: &[u8]) -> Result<Self, String> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(body).map_err(|e| format!("not a JWK Set ({{\"keys\":[…]}}): {e}"))?;
        let mut keys = HashMap::with_capacity(document.keys.len());
        for (index, member) in document.keys.into_iter().enumerate() {
            match parse_key(member) {
                Ok((kid, _)) if keys.contains_key(&kid) => tracing::warn!(kid, index, "JWKS names this kid twice; the first key is used"),
                Ok((kid, key)) => {
                    keys.insert(kid, key);
                }
                Err(reason) => tracing::warn!(index, reason, "skipping a JWKS key this verifier cannot use"),
            }
        }
        Ok(Self { keys })
    }

    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.get(kid)
    }

    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    pub fn len(&self) -> usize {
        self.keys.len()
    }
}

#[derive(Deserialize)]
struct Jwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    public_key_use: Option<String>,
    crv: Option<String>,
    x: Option<String>,
    y: Option<String>,
    n: Option<String>,
    e: Option<String>,
}

fn parse_key(member: serde_json::Value) -> Result<(String, VerificationKey), String> {
    let jwk: Jwk = serde_json::from_value(member).map_err(|e| format!("not a JWK: {e}"))?;
    let kid = jwk.kid.clone().ok_or("no kid (tokens name their key by kid)")?;
    if jwk.public_key_use.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!("kid {kid:?}: use is not \"sig\""));
    }
    let declared = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(Algorithm::from_name(name).ok_or_else(|| format!("kid {kid:?}: alg {name:?} is not supported"))?),
    };
    let member = |name: &str, value: &Option<String>| {
        let text = value.as_deref().ok_or_else(|| format!("kid {kid:?}: no {name}"))?;
        URL_SAFE_NO_PAD.decode(text).map_err(|_| format!("kid {kid:?}: {name} is not base64url"))
    };
    // The key type fixes the algorithm for EC and OKP; a declared alg must agree.
    let fixed = |implied: Algorithm| match declared {
        Some(alg) if alg != implied => {
            Err(format!("kid {kid:?}: a {} {} key cannot have alg {alg}", jwk.kty, jwk.crv.as_deref().unwrap_or("")))
        }
        _ => Ok(implied),
    };
    let (alg, key) = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (alg, ring_alg, size) = if crv == "P-256" {
                (fixed(Algorithm::ES256)?, &signature::ECDSA_P256_SHA256_FIXED, 32)
            } else {
                (fixed(Algorithm::ES384)?, &signature::ECDSA_P384_SHA384_FIXED, 48)
            };
            let (x, y) = (member("x", &jwk.x)?, member("y", &jwk.y)?);
            if x.len() != size || y.len() != size {
                return Err(format!("kid {kid:?}: x and y must be {size} bytes on {crv}"));
            }
            let point = [&[4u8][..], &x, &y].concat();
            (alg, PublicKey::Point(UnparsedPublicKey::new(ring_alg, point)))
        }
        ("OKP", Some("Ed25519")) => {
            let alg = fixed(Algorithm::EdDSA)?;
            let x = member("x", &jwk.x)?;
            if x.len() != 32 {
                return Err(format!("kid {kid:?}: an Ed25519 x is 32 bytes"));
            }
            (alg, PublicKey::Point(UnparsedPublicKey::new(&signature::ED25519, x)))
        }
        ("RSA", _) => {
            let alg = declared.ok_or_else(|| format!("kid {kid:?}: an RSA key needs alg (RS256 or PS256)"))?;
            let parameters: &'static signature::RsaParameters = match alg {
                Algorithm::RS256 => &signature::RSA_PKCS1_2048_8192_SHA256,
                Algorithm::PS256 => &signature::RSA_PSS_2048_8192_SHA256,
                other => return Err(format!("kid {kid:?}: an RSA key cannot have alg {other}")),
            };
            // Some encoders keep a leading zero; ring wants minimal integers.
            let minimal = |bytes: Vec<u8>| bytes.into_iter().skip_while(|b| *b == 0).collect::<Vec<u8>>();
            let components = RsaPublicKeyComponents { n: minimal(member("n", &jwk.n)?), e: minimal(member("e", &jwk.e)?) };
            (alg, PublicKey::Rsa(components, parameters))
        }
        (kty, crv) => return Err(format!("kid {kid:?}: kty {kty:?} with crv {crv:?} is not supported")),
    };
    Ok((kid, VerificationKey { alg, key }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn set(keys: serde_json::Value) -> KeySet {
        KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    #[test]
    fn ec_and_okp_keys_verify_with_the_algorithm_of_their_curve() {
        let rng = SystemRandom::new();
        let ec = EcdsaKeyPair::from_pkcs8(
            &ECDSA_P256_SHA256_FIXED_SIGNING,
            EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap().as_ref(),
            &rng,
        )
        .unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
        let point = ec.public_key().as_ref();
        let keys = set(json!([
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": b64(&point[1..33]), "y": b64(&point[33..])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "use": "sig", "x": b64(ed.public_key().as_ref())},
        ]));
        assert_eq!(keys.len(), 2);
        let ec_key = keys.get("ec").unwrap();
        assert_eq!(ec_key.alg, Algorithm::ES256);
        assert!(ec_key.verify(b"message", ec.sign(&rng, b"message").unwrap().as_ref()));
        assert!(!ec_key.verify(b"massage", ec.sign(&rng, b"message").unwrap().as_ref()));
        let ed_key = keys.get("ed").unwrap();
        assert_eq!(ed_key.alg, Algorithm::EdDSA);
        assert!(ed_key.verify(b"message", ed.sign(b"message").as_ref()));
        assert!(!ed_key.verify(b"message", ec.sign(&rng, b"message").unwrap().as_ref()));
    }

    #[test]
    fn keys_that_cannot_be_used_are_skipped_and_the_rest_load() {
        let x = b64(&[7; 32]);
        let keys = set(json!([
            {"kty": "oct", "kid": "hmac", "k": b64(b"secret")},
            {"kty": "OKP", "crv": "Ed25519", "kid": "enc", "use": "enc", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "kid": "claims-es256", "alg": "ES256", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "kid": "short", "x": b64(&[7; 31])},
            {"kty": "OKP", "crv": "X25519", "kid": "ecdh", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "x": x},
            {"kty": "RSA", "kid": "rsa-without-alg", "n": b64(&[1; 256]), "e": "AQAB"},
            {"kty": "RSA", "kid": "rsa-es256", "alg": "ES256", "n": b64(&[1; 256]), "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "hs", "alg": "HS256", "x": x},
            "not an object",
            {"kty": "RSA", "kid": "rsa", "alg": "PS256", "n": b64(&[0, 1, 2]), "e": "AQAB"},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "x": x},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "x": b64(&[8; 32])},
        ]));
        assert_eq!(keys.len(), 2);
        assert_eq!(keys.get("rsa").unwrap().alg, Algorithm::PS256);
        assert!(keys.contains("ed"));
        assert!(KeySet::from_jwks(b"{\"jwks\": []}").is_err());
        assert!(KeySet::from_jwks(b"<html>").is_err());
    }
}
