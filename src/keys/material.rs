//! Key material: parsed ring key pairs, their public JWKs and RFC 7638
//! thumbprints, PEM encoding, and generation of new keys.
//!
//! A key pair is parsed once, when the directory is loaded, and kept: on
//! this hardware parsing an ES256 PKCS#8 key costs about as much as one
//! signature, so re-parsing per token would nearly double the cost.

use super::SigningAlgorithm;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{self, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};

/// Why key material could not be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyMaterialError {
    #[error("not a PKCS#8 PEM private key (expected -----BEGIN PRIVATE KEY-----; convert with `openssl pkcs8 -topk8 -nocrypt -in KEY`)")]
    NotPkcs8Pem,
    #[error("the private key does not fit algorithm {alg}: {reason}")]
    Rejected { alg: SigningAlgorithm, reason: String },
    #[error("RSA key generation needs the `openssl` command: {0}")]
    RsaGeneration(String),
    #[error("the MAC secret is not 32 or more bytes of base64url")]
    BadMacSecret,
}

enum Pair {
    Ecdsa(EcdsaKeyPair),
    Ed25519(Ed25519KeyPair),
    Rsa(RsaKeyPair, &'static dyn signature::RsaEncoding),
}

/// A parsed private key that signs access tokens.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pair: Pair,
    /// The public JWK without `kid`/`alg`/`use` (those are added when rendering).
    public_members: Vec<(&'static str, String)>,
    /// base64url of `{"alg":…,"kid":…,"typ":"at+jwt"}`, made once.
    access_token_header: String,
    rng: SystemRandom,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningKey").field("kid", &self.kid).field("alg", &self.alg).finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Parse a PKCS#8 DER private key for `alg`; the kid is its RFC 7638
    /// thumbprint.
    pub fn from_pkcs8(alg: SigningAlgorithm, der: &[u8]) -> Result<Self, KeyMaterialError> {
        let rng = SystemRandom::new();
        let rejected = |reason: String| KeyMaterialError::Rejected { alg, reason };
        let b64 = |bytes: &[u8]| URL_SAFE_NO_PAD.encode(bytes);
        let (pair, public_members) = match alg {
            SigningAlgorithm::ES256 | SigningAlgorithm::ES384 => {
                let (signing, crv, size) = if alg == SigningAlgorithm::ES256 {
                    (&signature::ECDSA_P256_SHA256_FIXED_SIGNING, "P-256", 32)
                } else {
                    (&signature::ECDSA_P384_SHA384_FIXED_SIGNING, "P-384", 48)
                };
                let pair = EcdsaKeyPair::from_pkcs8(signing, der, &rng).map_err(|e| rejected(e.to_string()))?;
                let point = pair.public_key().as_ref();
                let (x, y) = point[1..].split_at(size);
                let members = vec![("crv", crv.to_string()), ("kty", "EC".into()), ("x", b64(x)), ("y", b64(y))];
                (Pair::Ecdsa(pair), members)
            }
            SigningAlgorithm::EdDSA => {
                let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|e| rejected(e.to_string()))?;
                let members = vec![("crv", "Ed25519".into()), ("kty", "OKP".into()), ("x", b64(pair.public_key().as_ref()))];
                (Pair::Ed25519(pair), members)
            }
            SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => {
                let pair = RsaKeyPair::from_pkcs8(der).map_err(|e| rejected(e.to_string()))?;
                if pair.public().modulus_len() < 256 {
                    return Err(rejected("RSA keys must be at least 2048 bits".into()));
                }
                let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
                let (n, e) = (b64(&components.n), b64(&components.e));
                let encoding: &'static dyn signature::RsaEncoding =
                    if alg == SigningAlgorithm::RS256 { &signature::RSA_PKCS1_SHA256 } else { &signature::RSA_PSS_SHA256 };
                (Pair::Rsa(pair, encoding), vec![("e", e), ("kty", "RSA".into()), ("n", n)])
            }
        };
        let kid = thumbprint(&public_members);
        let header = serde_json::json!({"alg": alg.as_str(), "kid": kid, "typ": "at+jwt"});
        let access_token_header = URL_SAFE_NO_PAD.encode(header.to_string());
        Ok(Self { kid, alg, pair, public_members, access_token_header, rng })
    }

    /// The encoded protected header of access tokens signed by this key.
    pub fn access_token_header(&self) -> &str {
        &self.access_token_header
    }

    /// Check a signature made by this key (the algorithm is the key's own).
    pub fn verify(&self, message: &[u8], signature_bytes: &[u8]) -> bool {
        use signature::UnparsedPublicKey;
        match &self.pair {
            Pair::Ecdsa(pair) => {
                let alg = if self.alg == SigningAlgorithm::ES256 {
                    &signature::ECDSA_P256_SHA256_FIXED
                } else {
                    &signature::ECDSA_P384_SHA384_FIXED
                };
                UnparsedPublicKey::new(alg, pair.public_key().as_ref()).verify(message, signature_bytes).is_ok()
            }
            Pair::Ed25519(pair) => {
                UnparsedPublicKey::new(&signature::ED25519, pair.public_key().as_ref()).verify(message, signature_bytes).is_ok()
            }
            Pair::Rsa(pair, _) => {
                let params = if self.alg == SigningAlgorithm::RS256 {
                    &signature::RSA_PKCS1_2048_8192_SHA256
                } else {
                    &signature::RSA_PSS_2048_8192_SHA256
                };
                ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public()).verify(params, message, signature_bytes).is_ok()
            }
        }
    }

    /// Sign `message` (the JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.pair {
            Pair::Ecdsa(pair) => pair.sign(&self.rng, message).expect("ECDSA signing with a valid key").as_ref().to_vec(),
            Pair::Ed25519(pair) => pair.sign(message).as_ref().to_vec(),
            Pair::Rsa(pair, encoding) => {
                let mut out = vec![0u8; pair.public().modulus_len()];
                pair.sign(*encoding, &self.rng, message, &mut out).expect("RSA signing with a valid key");
                out
            }
        }
    }

    /// The public JWK as JSON: only public members plus `kid`, `alg`, `use`.
    pub fn public_jwk_json(&self) -> String {
        let mut map = serde_json::Map::new();
        for (name, value) in &self.public_members {
            map.insert((*name).to_string(), serde_json::Value::String(value.clone()));
        }
        map.insert("kid".into(), self.kid.clone().into());
        map.insert("alg".into(), self.alg.as_str().into());
        map.insert("use".into(), "sig".into());
        serde_json::Value::Object(map).to_string()
    }

    /// Generate a new private key, as PKCS#8 DER.
    pub fn generate(alg: SigningAlgorithm) -> Result<Vec<u8>, KeyMaterialError> {
        let rng = SystemRandom::new();
        let unavailable = |e: ring::error::Unspecified| KeyMaterialError::Rejected { alg, reason: e.to_string() };
        match alg {
            SigningAlgorithm::ES256 => {
                Ok(EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(unavailable)?.as_ref().to_vec())
            }
            SigningAlgorithm::ES384 => {
                Ok(EcdsaKeyPair::generate_pkcs8(&signature::ECDSA_P384_SHA384_FIXED_SIGNING, &rng).map_err(unavailable)?.as_ref().to_vec())
            }
            SigningAlgorithm::EdDSA => Ok(Ed25519KeyPair::generate_pkcs8(&rng).map_err(unavailable)?.as_ref().to_vec()),
            // ring verifies and signs RSA but cannot generate RSA keys.
            SigningAlgorithm::RS256 | SigningAlgorithm::PS256 => {
                let output = std::process::Command::new("openssl")
                    .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
                    .output()
                    .map_err(|e| KeyMaterialError::RsaGeneration(e.to_string()))?;
                if !output.status.success() {
                    return Err(KeyMaterialError::RsaGeneration(String::from_utf8_lossy(&output.stderr).into_owned()));
                }
                // genpkey's PEM output is PKCS#8 (its DER output is PKCS#1).
                pem_decode(&String::from_utf8_lossy(&output.stdout))
            }
        }
    }
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

/// The refresh-token MAC key (HMAC-SHA256); never leaves the key directory.
pub struct MacKey {
    pub kid: String,
    key: ring::hmac::Key,
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MacKey").field("kid", &self.kid).finish_non_exhaustive()
    }
}

impl MacKey {
    /// Parse the file content: base64url of at least 32 random bytes.
    pub fn from_file_content(kid: &str, content: &str) -> Result<Self, KeyMaterialError> {
        let secret = URL_SAFE_NO_PAD.decode(content.trim()).map_err(|_| KeyMaterialError::BadMacSecret)?;
        if secret.len() < 32 {
            return Err(KeyMaterialError::BadMacSecret);
        }
        Ok(Self { kid: kid.to_string(), key: ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret) })
    }

    /// A new secret, as the file content, and an id for it.
    pub fn generate() -> (String, String) {
        let rng = SystemRandom::new();
        let mut secret = [0u8; 32];
        rng.fill(&mut secret).expect("system randomness");
        let mut id = [0u8; 9];
        rng.fill(&mut id).expect("system randomness");
        (format!("mac-{}", URL_SAFE_NO_PAD.encode(id)), URL_SAFE_NO_PAD.encode(secret))
    }

    pub fn tag(&self, message: &[u8]) -> ring::hmac::Tag {
        ring::hmac::sign(&self.key, message)
    }

    /// Constant-time check of a tag.
    pub fn verify(&self, message: &[u8], tag: &[u8]) -> bool {
        ring::hmac::verify(&self.key, message, tag).is_ok()
    }
}

/// Encode PKCS#8 DER as PEM.
pub fn pem_encode(der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut out = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str("-----END PRIVATE KEY-----\n");
    out
}

/// Decode a PKCS#8 PEM (`BEGIN PRIVATE KEY`) to DER.
pub fn pem_decode(pem: &str) -> Result<Vec<u8>, KeyMaterialError> {
    let start = pem.find("-----BEGIN PRIVATE KEY-----").ok_or(KeyMaterialError::NotPkcs8Pem)?;
    let rest = &pem[start + "-----BEGIN PRIVATE KEY-----".len()..];
    let end = rest.find("-----END PRIVATE KEY-----").ok_or(KeyMaterialError::NotPkcs8Pem)?;
    let body: String = rest[..end].chars().filter(|c| !c.is_whitespace()).collect();
    STANDARD.decode(body).map_err(|_| KeyMaterialError::NotPkcs8Pem)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc7638_thumbprint_example() {
        // RFC 7638 §3.1: the RSA key of RFC 7517 appendix A.1.
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let members = vec![("e", "AQAB".to_string()), ("kty", "RSA".to_string()), ("n", n.to_string())];
        assert_eq!(thumbprint(&members), "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs");
    }

    #[test]
    fn pem_round_trips() {
        let der = SigningKey::generate(SigningAlgorithm::ES256).unwrap();
        assert_eq!(pem_decode(&pem_encode(&der)).unwrap(), der);
        assert!(pem_decode("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----").is_err());
    }

    #[test]
    fn generated_keys_sign_and_publish_only_public_members() {
        for alg in [SigningAlgorithm::ES256, SigningAlgorithm::ES384, SigningAlgorithm::EdDSA] {
            let key = SigningKey::from_pkcs8(alg, &SigningKey::generate(alg).unwrap()).unwrap();
            let jwk: serde_json::Value = serde_json::from_str(&key.public_jwk_json()).unwrap();
            assert!(jwk.get("d").is_none(), "{alg}: private member published");
            assert_eq!(jwk["kid"], key.kid.as_str());
            assert!(!key.sign(b"message").is_empty());
        }
    }

    #[test]
    fn mac_key_verifies_its_own_tags_only() {
        let (kid, content) = MacKey::generate();
        let key = MacKey::from_file_content(&kid, &content).unwrap();
        let tag = key.tag(b"payload");
        assert!(key.verify(b"payload", tag.as_ref()));
        assert!(!key.verify(b"payloaD", tag.as_ref()));
        assert!(MacKey::from_file_content("x", "c2hvcnQ").is_err());
    }
}
