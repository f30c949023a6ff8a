//! A ring-backed [`CryptoProvider`] for jsonwebtoken 11 (cargo feature
//! `jsonwebtoken`).
//!
//! jsonwebtoken 11 no longer ships a ring backend, and tessera keeps a
//! single crypto library. tessera itself signs and verifies through this
//! crate's own JWS code; jsonwebtoken is the independent decoder its tests
//! check every minted token and feed document with, and this provider is
//! what lets it run on ring. Signers made here are cached by key, so
//! callers of `jsonwebtoken::encode` do not re-parse a key per token.

use jsonwebtoken::crypto::{CryptoProvider, JwtSigner, JwtVerifier, KeyUtils};
use jsonwebtoken::errors::{Error, ErrorKind, Result};
use jsonwebtoken::jwk::{EllipticCurve, ThumbprintHash};
use jsonwebtoken::{Algorithm, AlgorithmFamily, DecodingKey, DecodingKeyKind, EncodingKey};
use ring::rand::SystemRandom;
use ring::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

mod der;

/// The provider value; [`install`] makes it the process default.
pub static RING_PROVIDER: CryptoProvider = CryptoProvider {
    signer_factory: new_signer,
    verifier_factory: new_verifier,
    key_utils: KeyUtils {
        rsa_pub_components_from_private_key: rsa_components_from_private_key,
        rsa_pub_components_from_public_key: der::rsa_components_from_public_key,
        ec_pub_components_from_private_key: ec_components_from_private_key,
        ed_pub_components_from_private_key: ed_components_from_private_key,
        compute_digest,
    },
};

/// The same algorithm in jsonwebtoken's terms.
impl From<crate::Algorithm> for Algorithm {
    fn from(alg: crate::Algorithm) -> Self {
        match alg {
            crate::Algorithm::ES256 => Algorithm::ES256,
            crate::Algorithm::ES384 => Algorithm::ES384,
            crate::Algorithm::EdDSA => Algorithm::EdDSA,
            crate::Algorithm::RS256 => Algorithm::RS256,
            crate::Algorithm::PS256 => Algorithm::PS256,
        }
    }
}

/// Install the ring provider as jsonwebtoken's default (idempotent).
pub fn install() {
    static ONCE: OnceLock<()> = OnceLock::new();
    ONCE.get_or_init(|| {
        // Another provider may already be installed by an embedding program;
        // that is its choice to make.
        let _ = RING_PROVIDER.install_default();
    });
}

#[derive(Clone)]
enum ParsedPair {
    Ecdsa(Arc<EcdsaKeyPair>),
    Ed25519(Arc<Ed25519KeyPair>),
    Rsa(Arc<RsaKeyPair>),
}

/// Parsed private keys, by algorithm and SHA-256 of the DER.
type PairCache = Mutex<HashMap<(Algorithm, [u8; 32]), ParsedPair>>;

fn pair_cache() -> &'static PairCache {
    static CACHE: OnceLock<PairCache> = OnceLock::new();
    CACHE.get_or_init(Default::default)
}

fn parsed_pair(algorithm: Algorithm, der: &[u8]) -> Result<ParsedPair> {
    let mut id = [0u8; 32];
    id.copy_from_slice(ring::digest::digest(&ring::digest::SHA256, der).as_ref());
    if let Some(pair) = pair_cache().lock().unwrap_or_else(|e| e.into_inner()).get(&(algorithm, id)) {
        return Ok(pair.clone());
    }
    let pair = match algorithm {
        Algorithm::ES256 | Algorithm::ES384 => {
            let alg =
                if algorithm == Algorithm::ES256 { &sig::ECDSA_P256_SHA256_FIXED_SIGNING } else { &sig::ECDSA_P384_SHA384_FIXED_SIGNING };
            ParsedPair::Ecdsa(Arc::new(
                EcdsaKeyPair::from_pkcs8(alg, der, &SystemRandom::new()).map_err(|_| Error::from(ErrorKind::InvalidEcdsaKey))?,
            ))
        }
        Algorithm::EdDSA => ParsedPair::Ed25519(Arc::new(
            Ed25519KeyPair::from_pkcs8_maybe_unchecked(der).map_err(|_| Error::from(ErrorKind::InvalidEddsaKey))?,
        )),
        _ => ParsedPair::Rsa(Arc::new(
            RsaKeyPair::from_pkcs8(der)
                .or_else(|_| RsaKeyPair::from_der(der))
                .map_err(|e| Error::from(ErrorKind::InvalidRsaKey(e.to_string())))?,
        )),
    };
    let mut cache = pair_cache().lock().unwrap_or_else(|e| e.into_inner());
    if cache.len() >= 64 {
        cache.clear();
    }
    cache.insert((algorithm, id), pair.clone());
    Ok(pair)
}

struct RingSigner {
    algorithm: Algorithm,
    kind: SignerKind,
}

enum SignerKind {
    Hmac(ring::hmac::Key),
    Pair(ParsedPair, Option<&'static dyn sig::RsaEncoding>),
}

impl signature::Signer<Vec<u8>> for RingSigner {
    fn try_sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, signature::Error> {
        let rng = SystemRandom::new();
        match &self.kind {
            SignerKind::Hmac(key) => Ok(ring::hmac::sign(key, msg).as_ref().to_vec()),
            SignerKind::Pair(ParsedPair::Ecdsa(pair), _) => {
                pair.sign(&rng, msg).map(|s| s.as_ref().to_vec()).map_err(|_| signature::Error::new())
            }
            SignerKind::Pair(ParsedPair::Ed25519(pair), _) => Ok(pair.sign(msg).as_ref().to_vec()),
            SignerKind::Pair(ParsedPair::Rsa(pair), encoding) => {
                let encoding = encoding.ok_or_else(signature::Error::new)?;
                let mut out = vec![0; pair.public().modulus_len()];
                pair.sign(encoding, &rng, msg, &mut out).map_err(|_| signature::Error::new())?;
                Ok(out)
            }
        }
    }
}

impl JwtSigner for RingSigner {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn hmac_algorithm(algorithm: Algorithm) -> Option<ring::hmac::Algorithm> {
    match algorithm {
        Algorithm::HS256 => Some(ring::hmac::HMAC_SHA256),
        Algorithm::HS384 => Some(ring::hmac::HMAC_SHA384),
        Algorithm::HS512 => Some(ring::hmac::HMAC_SHA512),
        _ => None,
    }
}

fn rsa_encoding(algorithm: Algorithm) -> Option<&'static dyn sig::RsaEncoding> {
    Some(match algorithm {
        Algorithm::RS256 => &sig::RSA_PKCS1_SHA256,
        Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
        Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
        Algorithm::PS256 => &sig::RSA_PSS_SHA256,
        Algorithm::PS384 => &sig::RSA_PSS_SHA384,
        Algorithm::PS512 => &sig::RSA_PSS_SHA512,
        _ => return None,
    })
}

fn expected_family(algorithm: Algorithm) -> AlgorithmFamily {
    match algorithm {
        Algorithm::HS256 | Algorithm::HS384 | Algorithm::HS512 => AlgorithmFamily::Hmac,
        Algorithm::ES256 | Algorithm::ES384 => AlgorithmFamily::Ec,
        Algorithm::EdDSA => AlgorithmFamily::Ed,
        _ => AlgorithmFamily::Rsa,
    }
}

fn new_signer(algorithm: &Algorithm, key: &EncodingKey) -> Result<Box<dyn JwtSigner>> {
    let algorithm = *algorithm;
    if key.family() != expected_family(algorithm) {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    let kind = match hmac_algorithm(algorithm) {
        Some(hmac) => SignerKind::Hmac(ring::hmac::Key::new(hmac, key.as_bytes())),
        None => SignerKind::Pair(parsed_pair(algorithm, key.as_bytes())?, rsa_encoding(algorithm)),
    };
    Ok(Box::new(RingSigner { algorithm, kind }))
}

struct RingVerifier {
    algorithm: Algorithm,
    key: DecodingKey,
}

impl signature::Verifier<Vec<u8>> for RingVerifier {
    fn verify(&self, msg: &[u8], signature: &Vec<u8>) -> std::result::Result<(), signature::Error> {
        let fail = |_| signature::Error::new();
        if let Some(hmac) = hmac_algorithm(self.algorithm) {
            let secret = self.key.try_get_as_bytes().map_err(signature::Error::from_source)?;
            return ring::hmac::verify(&ring::hmac::Key::new(hmac, secret), msg, signature).map_err(fail);
        }
        let verification: &'static dyn sig::VerificationAlgorithm = match self.algorithm {
            Algorithm::ES256 => &sig::ECDSA_P256_SHA256_FIXED,
            Algorithm::ES384 => &sig::ECDSA_P384_SHA384_FIXED,
            Algorithm::EdDSA => &sig::ED25519,
            Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
            Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
            Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
            Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
            Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
            Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
            _ => return Err(signature::Error::new()),
        };
        match self.key.kind() {
            DecodingKeyKind::SecretOrDer(bytes) => sig::UnparsedPublicKey::new(verification, bytes).verify(msg, signature).map_err(fail),
            DecodingKeyKind::RsaModulusExponent { n, e } => {
                let params: &'static sig::RsaParameters = match self.algorithm {
                    Algorithm::RS256 => &sig::RSA_PKCS1_2048_8192_SHA256,
                    Algorithm::RS384 => &sig::RSA_PKCS1_2048_8192_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_2048_8192_SHA512,
                    Algorithm::PS256 => &sig::RSA_PSS_2048_8192_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_2048_8192_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_2048_8192_SHA512,
                    _ => return Err(signature::Error::new()),
                };
                sig::RsaPublicKeyComponents { n, e }.verify(params, msg, signature).map_err(fail)
            }
        }
    }
}

impl JwtVerifier for RingVerifier {
    fn algorithm(&self) -> Algorithm {
        self.algorithm
    }
}

fn new_verifier(algorithm: &Algorithm, key: &DecodingKey) -> Result<Box<dyn JwtVerifier>> {
    if key.family() != expected_family(*algorithm) {
        return Err(ErrorKind::InvalidKeyFormat.into());
    }
    Ok(Box::new(RingVerifier { algorithm: *algorithm, key: key.clone() }))
}

fn rsa_components_from_private_key(der: &[u8]) -> Result<(Vec<u8>, Vec<u8>)> {
    let pair = RsaKeyPair::from_pkcs8(der)
        .or_else(|_| RsaKeyPair::from_der(der))
        .map_err(|e| Error::from(ErrorKind::InvalidRsaKey(e.to_string())))?;
    let components = ring::rsa::PublicKeyComponents::<Vec<u8>>::from(pair.public());
    Ok((components.n, components.e))
}

fn ec_components_from_private_key(der: &[u8], algorithm: Algorithm) -> Result<(EllipticCurve, Vec<u8>, Vec<u8>)> {
    let (curve, size) = match algorithm {
        Algorithm::ES256 => (EllipticCurve::P256, 32),
        Algorithm::ES384 => (EllipticCurve::P384, 48),
        _ => return Err(ErrorKind::InvalidEcdsaKey.into()),
    };
    let ParsedPair::Ecdsa(pair) = parsed_pair(algorithm, der)? else {
        return Err(ErrorKind::InvalidEcdsaKey.into());
    };
    let point = pair.public_key().as_ref();
    let (x, y) = point[1..].split_at(size);
    Ok((curve, x.to_vec(), y.to_vec()))
}

fn ed_components_from_private_key(der: &[u8], curve: &EllipticCurve) -> Result<Vec<u8>> {
    if *curve != EllipticCurve::Ed25519 {
        return Err(ErrorKind::InvalidAlgorithm.into());
    }
    let ParsedPair::Ed25519(pair) = parsed_pair(Algorithm::EdDSA, der)? else {
        return Err(ErrorKind::InvalidEddsaKey.into());
    };
    Ok(pair.public_key().as_ref().to_vec())
}

fn compute_digest(data: &[u8], hash: ThumbprintHash) -> Result<Vec<u8>> {
    let algorithm = match hash {
        ThumbprintHash::SHA256 => &ring::digest::SHA256,
        ThumbprintHash::SHA384 => &ring::digest::SHA384,
        ThumbprintHash::SHA512 => &ring::digest::SHA512,
        _ => return Err(ErrorKind::InvalidAlgorithm.into()),
    };
    Ok(ring::digest::digest(algorithm, data).as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    fn b64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    fn verify(token: &str, key: &DecodingKey, algorithm: Algorithm) -> bool {
        install();
        let (input, signature) = token.rsplit_once('.').unwrap();
        jsonwebtoken::crypto::verify(signature, input.as_bytes(), key, algorithm).unwrap()
    }

    /// RFC 7515 appendix A.3: ES256.
    const RFC7515_A3: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ.DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

    #[test]
    fn rfc7515_a3_es256_vector_verifies() {
        let key =
            DecodingKey::from_ec_components("f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU", "x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0")
                .unwrap();
        assert!(verify(RFC7515_A3, &key, Algorithm::ES256));
        let tampered = RFC7515_A3.replacen("eyJpc3MiOiJqb2Ui", "eyJpc3MiOiJqb2Yi", 1);
        assert!(!verify(&tampered, &key, Algorithm::ES256));
    }

    /// RFC 8037 appendix A.4: Ed25519 signatures are deterministic, so the
    /// exact signature must come out of signing too.
    #[test]
    fn rfc8037_a4_ed25519_vector_signs_and_verifies() {
        install();
        let seed = b64("nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A");
        // PKCS#8 v1 wrapping of a raw Ed25519 seed (RFC 8410).
        let mut der = vec![0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20];
        der.extend_from_slice(&seed);
        let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
        let expected = "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let signature = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_ed_der(&der), Algorithm::EdDSA).unwrap();
        assert_eq!(signature, expected);
        let key = DecodingKey::from_ed_components("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo").unwrap();
        assert!(verify(&format!("{input}.{expected}"), &key, Algorithm::EdDSA));
        assert!(!verify(&format!("{input}X.{expected}"), &key, Algorithm::EdDSA));
    }

    #[test]
    fn hmac_round_trip_and_wrong_key_family_refused() {
        install();
        let signature = jsonwebtoken::crypto::sign(b"a.b", &EncodingKey::from_secret(b"k"), Algorithm::HS256).unwrap();
        assert!(jsonwebtoken::crypto::verify(&signature, b"a.b", &DecodingKey::from_secret(b"k"), Algorithm::HS256).unwrap());
        assert!(!jsonwebtoken::crypto::verify(&signature, b"a.b", &DecodingKey::from_secret(b"j"), Algorithm::HS256).unwrap());
        // An HMAC secret offered where an EC key is expected (the classic
        // algorithm-confusion attack) is refused outright.
        assert!(jsonwebtoken::crypto::verify(&signature, b"a.b", &DecodingKey::from_secret(b"k"), Algorithm::ES256).is_err());
    }

    #[test]
    fn rsa_signs_and_verifies_from_components() {
        install();
        // ring cannot generate RSA keys; openssl's genpkey PEM is PKCS#8.
        let output = std::process::Command::new("openssl")
            .args(["genpkey", "-algorithm", "RSA", "-pkeyopt", "rsa_keygen_bits:2048"])
            .output()
            .unwrap_or_else(|e| panic!("RSA generation needs openssl on this machine: {e}"));
        assert!(output.status.success(), "openssl genpkey: {}", String::from_utf8_lossy(&output.stderr));
        let pem = String::from_utf8(output.stdout).unwrap();
        let body: String = pem.lines().filter(|line| !line.starts_with("-----")).collect();
        let der = base64::engine::general_purpose::STANDARD.decode(body).unwrap();
        let (n, e) = rsa_components_from_private_key(&der).unwrap();
        for algorithm in [Algorithm::RS256, Algorithm::PS256] {
            let signature = jsonwebtoken::crypto::sign(b"x.y", &EncodingKey::from_rsa_der(&der), algorithm).unwrap();
            let key = DecodingKey::from_rsa_raw_components(&n, &e);
            assert!(jsonwebtoken::crypto::verify(&signature, b"x.y", &key, algorithm).unwrap());
        }
    }

    #[test]
    fn algorithms_map_to_the_jsonwebtoken_algorithm_of_the_same_name() {
        for alg in crate::Algorithm::ALL {
            assert_eq!(format!("{:?}", Algorithm::from(alg)), alg.as_str());
        }
    }
}
