//! Key material: the signing keys (ring key pairs from tessera-jose, with
//! the kid and the access-token header made once), the refresh-token MAC
//! key, PEM encoding, and generation of new keys.
//!
//! A key pair is parsed once, when the directory is loaded, and kept: on
//! this hardware parsing an ES256 PKCS#8 key costs about as much as one
//! signature, so re-parsing per token would nearly double the cost. The
//! JOSE parts — signing, verifying, public JWK members, the RFC 7638
//! thumbprint — are tessera-jose's, shared with the verifier; what is
//! server-only (files, PEM, RSA generation with openssl, the MAC key) is
//! here.

use super::SigningAlgorithm;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use ring::rand::{SecureRandom, SystemRandom};
use tessera_jose::{Header, KeyError, KeyPair, PublicKey, typ};

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

/// A parsed private key that signs access tokens.
pub struct SigningKey {
    pub kid: String,
    pub alg: SigningAlgorithm,
    pair: KeyPair,
    /// base64url of `{"alg":…,"kid":…,"typ":"at+jwt"}`, made once.
    access_token_header: String,
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
        let pair = KeyPair::from_pkcs8(alg, der).map_err(|e| KeyMaterialError::Rejected { alg, reason: e.to_string() })?;
        let kid = pair.thumbprint();
        let access_token_header = Header::new(alg, kid.as_str(), typ::AT_JWT).encode();
        Ok(Self { kid, alg, pair, access_token_header })
    }

    /// The encoded protected header of access tokens signed by this key.
    pub fn access_token_header(&self) -> &str {
        &self.access_token_header
    }

    /// The public half, which checks this key's signatures with its own
    /// algorithm.
    pub fn public_key(&self) -> &PublicKey {
        self.pair.public_key()
    }

    /// Check a signature made by this key (the algorithm is the key's own).
    pub fn verify(&self, message: &[u8], signature_bytes: &[u8]) -> bool {
        self.pair.public_key().verify(message, signature_bytes)
    }

    /// Sign `message` (the JWS signing input).
    pub fn sign(&self, message: &[u8]) -> Vec<u8> {
        self.pair.sign(message)
    }

    /// The public JWK as JSON: only public members plus `kid`, `alg`, `use`.
    pub fn public_jwk_json(&self) -> String {
        self.pair.public_jwk_json(&self.kid)
    }

    /// Generate a new private key, as PKCS#8 DER.
    pub fn generate(alg: SigningAlgorithm) -> Result<Vec<u8>, KeyMaterialError> {
        match KeyPair::generate_pkcs8(alg) {
            // ring verifies and signs RSA but cannot generate RSA keys.
            Err(KeyError::CannotGenerate(_)) => {
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
            generated => generated.map_err(|e| KeyMaterialError::Rejected { alg, reason: e.to_string() }),
        }
    }
}

impl tessera_jose::Signer for SigningKey {
    fn sign(&self, signing_input: &[u8]) -> Vec<u8> {
        self.pair.sign(signing_input)
    }
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
