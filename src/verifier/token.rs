//! The checks on a compact JWS, in the order a verifier must make them, and
//! the error that names the one that failed.
//!
//! RFC 8725 shapes the order: the header is read only to find `typ` and the
//! key; the algorithm comes from that key, and the header's `alg` must merely
//! agree with it (so `alg: none` or an HS256 header signed with a public key
//! as HMAC secret fails before any cryptography); nothing in the payload is
//! trusted before the signature verifies. `jku`, `x5u` and `jwk` headers are
//! never read — keys come only from the issuer's JWKS.
//!
//! Everything here is a pure function of the token, a [`KeySet`], a
//! [`Policy`] and the time, so the checks are tested without a network.

use super::claims::Claims;
use super::jwk::{Algorithm, KeySet};
use super::revocations::{RevocationKind, RevocationMirror};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::Deserialize;

/// Larger tokens are refused before any decoding.
const MAX_TOKEN_BYTES: usize = 16 * 1024;

/// `typ` values of an access token (RFC 9068 §2.1; media types compare
/// case-insensitively and may omit `application/`, RFC 7515 §4.1.9).
pub(crate) const ACCESS_TOKEN_TYPES: &[&str] = &["at+jwt", "application/at+jwt"];

/// What a token must satisfy beyond its signature.
pub(crate) struct Policy {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway_seconds: i64,
    pub algorithms: Vec<Algorithm>,
}

/// Why a token was not accepted; each variant is one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("not a compact JWS: {0}")]
    Malformed(&'static str),
    #[error("typ is {found:?}; expected {expected:?}")]
    WrongType { found: Option<String>, expected: &'static str },
    #[error("signed with kid {kid:?}, which is not in the issuer's JWKS")]
    UnknownKey { kid: String },
    #[error("the header says alg {header:?} but the key is {key}; the algorithm comes from the key")]
    AlgorithmMismatch { header: String, key: Algorithm },
    #[error("the key's algorithm {0} is not in this verifier's allow-list")]
    AlgorithmNotAllowed(Algorithm),
    #[error("the signature does not verify")]
    BadSignature,
    #[error("the payload is not access-token claims: {0}")]
    InvalidClaims(String),
    #[error("issued by {iss:?}; only {expected:?} is trusted")]
    WrongIssuer { iss: String, expected: String },
    #[error("audience {aud:?} names none of this service's audiences {expected:?}")]
    WrongAudience { aud: Vec<String>, expected: Vec<String> },
    #[error("expired at {exp} (Unix time)")]
    Expired { exp: i64 },
    #[error("not valid before {nbf} (Unix time)")]
    NotYetValid { nbf: i64 },
    #[error("issued in the future, at {iat} (Unix time)")]
    IssuedInFuture { iat: i64 },
    #[error("revoked: {0}")]
    Revoked(RevocationKind),
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: Option<String>,
    typ: Option<String>,
    /// RFC 7515 §4.1.11: extensions that must be understood; none are.
    crit: Option<serde::de::IgnoredAny>,
}

/// A compact JWS split into its parts, its signature not yet checked.
pub(crate) struct CompactJws<'a> {
    header: Header,
    kid: String,
    signing_input: &'a str,
    payload: &'a str,
    signature: &'a str,
}

impl<'a> CompactJws<'a> {
    pub fn parse(token: &'a str) -> Result<Self, VerifyError> {
        use VerifyError::Malformed;
        if token.len() > MAX_TOKEN_BYTES {
            return Err(Malformed("longer than 16 KiB"));
        }
        let (signing_input, signature) = token.rsplit_once('.').ok_or(Malformed("not three dot-separated parts"))?;
        let (header, payload) = signing_input.split_once('.').ok_or(Malformed("not three dot-separated parts"))?;
        let header = URL_SAFE_NO_PAD.decode(header).map_err(|_| Malformed("the header is not base64url"))?;
        let header: Header = serde_json::from_slice(&header).map_err(|_| Malformed("the header is not a JOSE header with alg"))?;
        if header.crit.is_some() {
            return Err(Malformed("the header has crit extensions, which this verifier does not implement"));
        }
        let kid = header.kid.clone().ok_or(Malformed("the header has no kid"))?;
        Ok(Self { header, kid, signing_input, payload, signature })
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// `typ` must be one of `accepted` (the first is the canonical one).
    pub fn require_type(&self, accepted: &'static [&'static str]) -> Result<(), VerifyError> {
        match self.header.typ.as_deref() {
            Some(typ) if accepted.iter().any(|a| a.eq_ignore_ascii_case(typ)) => Ok(()),
            found => Err(VerifyError::WrongType { found: found.map(str::to_string), expected: accepted[0] }),
        }
    }

    /// Find the key, take the algorithm from it, check the signature; the
    /// decoded payload once it verified.
    pub fn verify_signature(&self, keys: &KeySet, allowed: &[Algorithm]) -> Result<Vec<u8>, VerifyError> {
        let key = keys.get(&self.kid).ok_or_else(|| VerifyError::UnknownKey { kid: self.kid.clone() })?;
        if self.header.alg != key.alg.as_str() {
            return Err(VerifyError::AlgorithmMismatch { header: self.header.alg.clone(), key: key.alg });
        }
        if !allowed.contains(&key.alg) {
            return Err(VerifyError::AlgorithmNotAllowed(key.alg));
        }
        let signature = URL_SAFE_NO_PAD.decode(self.signature).map_err(|_| VerifyError::Malformed("the signature is not base64url"))?;
        if !key.verify(self.signing_input.as_bytes(), &signature) {
            return Err(VerifyError::BadSignature);
        }
        URL_SAFE_NO_PAD.decode(self.payload).map_err(|_| VerifyError::Malformed("the payload is not base64url"))
    }
}

/// Every check on an access token, in order; `revocations` when the feed
/// is followed.
pub(crate) fn check_access_token(
    token: &str,
    keys: &KeySet,
    policy: &Policy,
    revocations: Option<&RevocationMirror>,
    now: i64,
) -> Result<Claims, VerifyError> {
    let jws = CompactJws::parse(token)?;
    jws.require_type(ACCESS_TOKEN_TYPES)?;
    let payload = jws.verify_signature(keys, &policy.algorithms)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|e| VerifyError::InvalidClaims(e.to_string()))?;
    claims.check(policy, now)?;
    if let Some(mirror) = revocations {
        mirror.check(&claims, jws.kid())?;
    }
    Ok(claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verifier::revocations::RevocationEntry;
    use ring::rand::SystemRandom;
    use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, Ed25519KeyPair, KeyPair};
    use serde_json::{Value, json};

    const NOW: i64 = 1_800_000_000;

    struct Keys {
        rng: SystemRandom,
        ec: EcdsaKeyPair,
        ed: Ed25519KeyPair,
        set: KeySet,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn keys() -> Keys {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let ec = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).unwrap();
        let ed = Ed25519KeyPair::from_pkcs8(Ed25519KeyPair::generate_pkcs8(&rng).unwrap().as_ref()).unwrap();
        let point = ec.public_key().as_ref();
        let jwks = json!({"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec", "alg": "ES256", "x": b64(&point[1..33]), "y": b64(&point[33..])},
            {"kty": "OKP", "crv": "Ed25519", "kid": "ed", "alg": "EdDSA", "x": b64(ed.public_key().as_ref())},
        ]});
        let set = KeySet::from_jwks(jwks.to_string().as_bytes()).unwrap();
        Keys { rng, ec, ed, set }
    }

    impl Keys {
        /// Sign header and claims with the key `header.kid` names.
        fn sign(&self, header: &Value, claims: &Value) -> String {
            let input = format!("{}.{}", b64(header.to_string().as_bytes()), b64(claims.to_string().as_bytes()));
            let signature = match header["kid"].as_str() {
                Some("ed") => self.ed.sign(input.as_bytes()).as_ref().to_vec(),
                _ => self.ec.sign(&self.rng, input.as_bytes()).unwrap().as_ref().to_vec(),
            };
            format!("{input}.{}", b64(&signature))
        }
    }

    fn header(kid: &str) -> Value {
        json!({"alg": if kid == "ed" { "EdDSA" } else { "ES256" }, "kid": kid, "typ": "at+jwt"})
    }

    fn claims() -> Value {
        json!({"iss": "https://issuer.test", "sub": "alice", "aud": "orders-api", "exp": NOW + 600, "iat": NOW,
               "jti": "j1", "client_id": "web", "sid": "s1"})
    }

    fn with(mut value: Value, key: &str, member: Value) -> Value {
        value[key] = member;
        value
    }

    fn policy(algorithms: &[Algorithm]) -> Policy {
        Policy {
            issuer: "https://issuer.test".into(),
            audiences: vec!["orders-api".into()],
            leeway_seconds: 0,
            algorithms: algorithms.to_vec(),
        }
    }

    fn check(keys: &Keys, token: &str) -> Result<Claims, VerifyError> {
        check_access_token(token, &keys.set, &policy(&Algorithm::ALL), None, NOW)
    }

    #[test]
    fn tokens_signed_by_either_key_verify() {
        let keys = keys();
        for kid in ["ec", "ed"] {
            let claims = check(&keys, &keys.sign(&header(kid), &claims())).unwrap();
            assert_eq!((claims.sub.as_str(), claims.jti.as_str()), ("alice", "j1"));
        }
        for typ in ["AT+JWT", "application/at+jwt"] {
            assert!(check(&keys, &keys.sign(&with(header("ec"), "typ", typ.into()), &claims())).is_ok(), "{typ}");
        }
    }

    #[test]
    fn a_token_that_is_no_compact_jws_is_malformed() {
        let keys = keys();
        let good = keys.sign(&header("ec"), &claims());
        let (input, signature) = good.rsplit_once('.').unwrap();
        for token in [
            "".to_string(),
            "abc".into(),
            "a.b".into(),
            format!("!!.{}", good.split_once('.').unwrap().1),
            format!("{}.{}", b64(b"[1]"), good.split_once('.').unwrap().1),
            keys.sign(&json!({"alg": "ES256", "typ": "at+jwt"}), &claims()),
            keys.sign(&with(header("ec"), "crit", json!(["exp"])), &claims()),
            format!("{input}.{signature}!"),
            format!("{good}{}", "A".repeat(MAX_TOKEN_BYTES)),
        ] {
            assert!(matches!(check(&keys, &token), Err(VerifyError::Malformed(_))), "{token:.80}");
        }
    }

    #[test]
    fn header_checks_come_first_and_the_algorithm_comes_from_the_key() {
        let keys = keys();
        let wrong_type = keys.sign(&with(header("ec"), "typ", "JWT".into()), &claims());
        assert_eq!(check(&keys, &wrong_type).unwrap_err(), VerifyError::WrongType { found: Some("JWT".into()), expected: "at+jwt" });
        let no_type = keys.sign(&json!({"alg": "ES256", "kid": "ec"}), &claims());
        assert_eq!(check(&keys, &no_type).unwrap_err(), VerifyError::WrongType { found: None, expected: "at+jwt" });
        let unknown = keys.sign(&header("gone"), &claims());
        assert_eq!(check(&keys, &unknown).unwrap_err(), VerifyError::UnknownKey { kid: "gone".into() });
        for alg in ["none", "HS256", "EdDSA"] {
            let token = keys.sign(&with(header("ec"), "alg", alg.into()), &claims());
            assert_eq!(check(&keys, &token).unwrap_err(), VerifyError::AlgorithmMismatch { header: alg.into(), key: Algorithm::ES256 });
        }
        let ed_only = policy(&[Algorithm::EdDSA]);
        let es256 = keys.sign(&header("ec"), &claims());
        assert_eq!(
            check_access_token(&es256, &keys.set, &ed_only, None, NOW).unwrap_err(),
            VerifyError::AlgorithmNotAllowed(Algorithm::ES256)
        );
    }

    #[test]
    fn nothing_in_the_payload_is_read_before_the_signature_verifies() {
        let keys = keys();
        let good = keys.sign(&header("ed"), &claims());
        let (_, signature) = good.rsplit_once('.').unwrap();
        // Someone else's claims under this signature: expired and for another audience too.
        let forged_claims = with(with(claims(), "sub", "mallory".into()), "exp", 0.into());
        let forged = format!("{}.{}.{signature}", b64(header("ed").to_string().as_bytes()), b64(forged_claims.to_string().as_bytes()));
        assert_eq!(check(&keys, &forged).unwrap_err(), VerifyError::BadSignature);
        // Signed by the other key, under this key's kid and alg.
        let input = format!("{}.{}", b64(header("ec").to_string().as_bytes()), b64(claims().to_string().as_bytes()));
        let by_the_other_key = format!("{input}.{}", b64(keys.ed.sign(input.as_bytes()).as_ref()));
        assert_eq!(check(&keys, &by_the_other_key).unwrap_err(), VerifyError::BadSignature);
        let not_claims = keys.sign(&header("ec"), &json!({"sub": "alice"}));
        assert!(matches!(check(&keys, &not_claims).unwrap_err(), VerifyError::InvalidClaims(_)));
    }

    #[test]
    fn claims_then_revocation_are_checked_last() {
        let keys = keys();
        let mirror = RevocationMirror::default();
        let entry: RevocationEntry =
            serde_json::from_value(json!({"seq": 1, "kind": "session", "sid": "s1", "expires_at": NOW + 900})).unwrap();
        mirror.apply(&[entry], NOW);
        let policy = policy(&Algorithm::ALL);
        let live = keys.sign(&header("ec"), &claims());
        assert_eq!(
            check_access_token(&live, &keys.set, &policy, Some(&mirror), NOW).unwrap_err(),
            VerifyError::Revoked(RevocationKind::Session)
        );
        let expired = keys.sign(&header("ec"), &with(claims(), "exp", NOW.into()));
        assert_eq!(check_access_token(&expired, &keys.set, &policy, Some(&mirror), NOW).unwrap_err(), VerifyError::Expired { exp: NOW });
        let other_session = keys.sign(&header("ec"), &with(claims(), "sid", "s2".into()));
        assert!(check_access_token(&other_session, &keys.set, &policy, Some(&mirror), NOW).is_ok());
    }
}
