//! JSON Web Keys (RFC 7517, RFC 7518 §6, RFC 8037) both ways: a JWK Set
//! parsed into ring [`PublicKey`]s — once per fetch, never per token — and a
//! key pair's public members rendered as a JWK, with its RFC 7638
//! thumbprint.
//!
//! A key's algorithm is fixed here, by the key: its `alg` member, or, where
//! the key type alone decides it (`EC` on P-256 or P-384, `OKP` Ed25519),
//! that. An RSA key without `alg` could be RS256 or PS256, so it is skipped
//! rather than guessed. As RFC 7517 §5 asks, a key that cannot be used
//! (unknown `kty`, `use` other than `sig`, missing or malformed members, an
//! `alg` its type cannot have) is skipped and the rest of the set still
//! loads; what was skipped is reported in [`KeySet::skipped`] for the caller
//! to log, since this crate does no logging of its own.

use crate::{Algorithm, PublicKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;
use std::collections::HashMap;

/// The document is not a JWK Set (`{"keys": […]}`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a JWK Set ({{\"keys\":[…]}}): {0}")]
pub struct JwksError(String);

/// A member of a JWK Set that was left out, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SkippedKey {
    /// A second key with a kid already seen; the first one is kept.
    Duplicate {
        /// Its position in `keys`.
        index: usize,
        /// The repeated kid.
        kid: String,
    },
    /// A key that cannot verify tessera's tokens.
    Unusable {
        /// Its position in `keys`.
        index: usize,
        /// What is wrong with it, naming its kid when it has one.
        reason: String,
    },
}

/// The usable keys of one JWK Set, by `kid`.
#[derive(Debug, Default)]
pub struct KeySet {
    keys: HashMap<String, PublicKey>,
    skipped: Vec<SkippedKey>,
}

impl KeySet {
    /// Parse a JWK Set document. Fails only if the document itself is not
    /// a JWK Set; unusable keys are skipped (see [`KeySet::skipped`]).
    pub fn from_jwks(body: &[u8]) -> Result<Self, JwksError> {
        #[derive(Deserialize)]
        struct Document {
            keys: Vec<serde_json::Value>,
        }
        let document: Document = serde_json::from_slice(body).map_err(|e| JwksError(e.to_string()))?;
        let mut set = KeySet { keys: HashMap::with_capacity(document.keys.len()), skipped: Vec::new() };
        for (index, member) in document.keys.into_iter().enumerate() {
            match parse_key(member) {
                Ok((kid, _)) if set.keys.contains_key(&kid) => set.skipped.push(SkippedKey::Duplicate { index, kid }),
                Ok((kid, key)) => {
                    set.keys.insert(kid, key);
                }
                Err(reason) => set.skipped.push(SkippedKey::Unusable { index, reason }),
            }
        }
        Ok(set)
    }

    /// The key named `kid`.
    pub fn get(&self, kid: &str) -> Option<&PublicKey> {
        self.keys.get(kid)
    }

    /// Whether a key is named `kid`.
    pub fn contains(&self, kid: &str) -> bool {
        self.keys.contains_key(kid)
    }

    /// How many keys are usable.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether no key is usable.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The members that were left out, in document order.
    pub fn skipped(&self) -> &[SkippedKey] {
        &self.skipped
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

fn parse_key(member: serde_json::Value) -> Result<(String, PublicKey), String> {
    let jwk: Jwk = serde_json::from_value(member).map_err(|e| format!("not a JWK: {e}"))?;
    let kid = jwk.kid.clone().ok_or("no kid (tokens name their key by kid)")?;
    if jwk.public_key_use.as_deref().is_some_and(|u| u != "sig") {
        return Err(format!("kid {kid:?}: use is not \"sig\""));
    }
    let declared = match jwk.alg.as_deref() {
        None => None,
        Some(name) => Some(Algorithm::parse(name).ok_or_else(|| format!("kid {kid:?}: alg {name:?} is not supported"))?),
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
    let key = match (jwk.kty.as_str(), jwk.crv.as_deref()) {
        ("EC", Some(crv @ ("P-256" | "P-384"))) => {
            let (alg, size) = if crv == "P-256" { (fixed(Algorithm::ES256)?, 32) } else { (fixed(Algorithm::ES384)?, 48) };
            let (x, y) = (member("x", &jwk.x)?, member("y", &jwk.y)?);
            if x.len() != size || y.len() != size {
                return Err(format!("kid {kid:?}: x and y must be {size} bytes on {crv}"));
            }
            PublicKey::point(alg, [&[4u8][..], &x, &y].concat())
        }
        ("OKP", Some("Ed25519")) => {
            let alg = fixed(Algorithm::EdDSA)?;
            let x = member("x", &jwk.x)?;
            if x.len() != 32 {
                return Err(format!("kid {kid:?}: an Ed25519 x is 32 bytes"));
            }
            PublicKey::point(alg, x)
        }
        ("RSA", _) => {
            let alg = declared.ok_or_else(|| format!("kid {kid:?}: an RSA key needs alg (RS256 or PS256)"))?;
            let (n, e) = (member("n", &jwk.n)?, member("e", &jwk.e)?);
            PublicKey::rsa(alg, n, e).ok_or_else(|| format!("kid {kid:?}: an RSA key cannot have alg {alg}"))?
        }
        (kty, crv) => return Err(format!("kid {kid:?}: kty {kty:?} with crv {crv:?} is not supported")),
    };
    Ok((kid, key))
}

/// RFC 7638 thumbprint: SHA-256 over the required members in lexicographic
/// order, no whitespace, base64url.
pub fn thumbprint(members: &[(&str, String)]) -> String {
    let mut sorted: Vec<_> = members.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    let body = sorted
        .iter()
        .map(|(name, value)| format!("{}:{}", serde_json::Value::from(*name), serde_json::Value::from(value.as_str())))
        .collect::<Vec<_>>()
        .join(",");
    let hash = ring::digest::digest(&ring::digest::SHA256, format!("{{{body}}}").as_bytes());
    URL_SAFE_NO_PAD.encode(hash.as_ref())
}

/// A public JWK as JSON: `members` plus `kid`, `alg` and `use: "sig"`.
pub(crate) fn render_public(members: &[(&'static str, String)], kid: &str, alg: Algorithm) -> String {
    let mut map = serde_json::Map::new();
    for (name, value) in members {
        map.insert((*name).to_string(), serde_json::Value::String(value.clone()));
    }
    map.insert("kid".into(), kid.into());
    map.insert("alg".into(), alg.as_str().into());
    map.insert("use".into(), "sig".into());
    serde_json::Value::Object(map).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyPair;
    use serde_json::json;

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn set(keys: serde_json::Value) -> KeySet {
        KeySet::from_jwks(json!({ "keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn pair(alg: Algorithm) -> KeyPair {
        KeyPair::from_pkcs8(alg, &KeyPair::generate_pkcs8(alg).unwrap()).unwrap()
    }

    #[test]
    fn ec_and_okp_keys_verify_with_the_algorithm_of_their_curve() {
        let (ec, ed) = (pair(Algorithm::ES256), pair(Algorithm::EdDSA));
        let ec_members: HashMap<_, _> = ec.public_members().iter().cloned().collect();
        let keys = set(json!([
            {"kty": "EC", "crv": "P-256", "kid": "ec", "x": ec_members["x"], "y": ec_members["y"]},
            serde_json::from_str::<serde_json::Value>(&ed.public_jwk_json("ed")).unwrap(),
        ]));
        assert_eq!(keys.len(), 2);
        assert!(keys.skipped().is_empty());
        let ec_key = keys.get("ec").unwrap();
        assert_eq!(ec_key.alg(), Algorithm::ES256);
        assert!(ec_key.verify(b"message", &ec.sign(b"message")));
        assert!(!ec_key.verify(b"massage", &ec.sign(b"message")));
        let ed_key = keys.get("ed").unwrap();
        assert_eq!(ed_key.alg(), Algorithm::EdDSA);
        assert!(ed_key.verify(b"message", &ed.sign(b"message")));
        assert!(!ed_key.verify(b"message", &ec.sign(b"message")));
    }

    #[test]
    fn a_rendered_jwk_parses_back_to_a_key_that_verifies() {
        for alg in [Algorithm::ES256, Algorithm::ES384, Algorithm::EdDSA] {
            let pair = pair(alg);
            let jwks = format!("{{\"keys\":[{}]}}", pair.public_jwk_json(&pair.thumbprint()));
            let keys = KeySet::from_jwks(jwks.as_bytes()).unwrap();
            let key = keys.get(&pair.thumbprint()).unwrap();
            assert_eq!(key.alg(), alg);
            assert!(key.verify(b"input", &pair.sign(b"input")), "{alg}");
        }
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
        assert_eq!(keys.get("rsa").unwrap().alg(), Algorithm::PS256);
        assert!(keys.contains("ed"));
        assert_eq!(keys.skipped().len(), 11);
        assert_eq!(keys.skipped()[10], SkippedKey::Duplicate { index: 12, kid: "ed".into() });
        assert!(matches!(&keys.skipped()[8], SkippedKey::Unusable { index: 8, reason } if reason.contains("HS256")));
        assert!(KeySet::from_jwks(b"{\"jwks\": []}").is_err());
        assert!(KeySet::from_jwks(b"<html>").is_err());
    }
}
