//! The checks on an access token, in the order a verifier must make them,
//! and the error that names the one that failed.
//!
//! RFC 8725 shapes the order, and tessera-jose's [`CompactJws`] keeps it:
//! the header is read only to find `typ` and the key; the algorithm comes
//! from that key, and the header's `alg` must merely agree with it (so
//! `alg: none` or an HS256 header signed with a public key as HMAC secret
//! fails before any cryptography); nothing in the payload is trusted before
//! the signature verifies. `jku`, `x5u` and `jwk` headers are never read —
//! keys come only from the issuer's JWKS.
//!
//! The checks fall in two: those that need the signature
//! ([`verify_signed_claims`]), which the verified-token cache spares a token
//! seen before, and those whose answer can change over a token's life
//! ([`check_claims`]: issuer, audience, time, revocation), made on every
//! call.
//!
//! Everything here is a pure function of the token, a [`KeySet`], a
//! [`Policy`] and the time, so the checks are tested without a network.

use super::claims::Claims;
use super::revocations::{RevocationKind, RevocationMirror};
use tessera_jose::dpop::ProofError;
use tessera_jose::{Algorithm, CompactJws, JwsError, KeySet, TimeError, typ};

/// What a token must satisfy beyond its signature.
pub(crate) struct Policy {
    pub issuer: String,
    pub audiences: Vec<String>,
    pub leeway_seconds: i64,
    pub algorithms: Vec<Algorithm>,
}

/// Why a token was not accepted; each variant is one check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum VerifyError {
    /// Not a compact JWS with a usable header; the text says which part.
    #[error("not a compact JWS: {0}")]
    Malformed(&'static str),
    /// The header's `typ` is not the expected one (`at+jwt` for access
    /// tokens, RFC 9068 §4).
    #[error("typ is {found:?}; expected {expected:?}")]
    WrongType {
        /// The header's `typ`, if any.
        found: Option<String>,
        /// The `typ` required.
        expected: &'static str,
    },
    /// The key the header names is not in the issuer's JWKS (after a
    /// refetch, when the cooldown allowed one).
    #[error("signed with kid {kid:?}, which is not in the issuer's JWKS")]
    UnknownKey {
        /// The header's `kid`.
        kid: String,
    },
    /// The header's `alg` is not the key's algorithm.
    #[error("the header says alg {header:?} but the key is {key}; the algorithm comes from the key")]
    AlgorithmMismatch {
        /// The header's `alg`, as written.
        header: String,
        /// The key's algorithm.
        key: Algorithm,
    },
    /// The key's algorithm is not in this verifier's allow-list.
    #[error("the key's algorithm {0} is not in this verifier's allow-list")]
    AlgorithmNotAllowed(Algorithm),
    /// The signature is not the key's.
    #[error("the signature does not verify")]
    BadSignature,
    /// The signed payload is not RFC 9068 access-token claims.
    #[error("the payload is not access-token claims: {0}")]
    InvalidClaims(String),
    /// `iss` is not the configured issuer.
    #[error("issued by {iss:?}; only {expected:?} is trusted")]
    WrongIssuer {
        /// The token's `iss`.
        iss: String,
        /// The configured issuer.
        expected: String,
    },
    /// `aud` names none of this service's audiences.
    #[error("audience {aud:?} names none of this service's audiences {expected:?}")]
    WrongAudience {
        /// The token's `aud`.
        aud: Vec<String>,
        /// The audiences this verifier accepts.
        expected: Vec<String>,
    },
    /// `exp` has passed (beyond the leeway).
    #[error("expired at {exp} (Unix time)")]
    Expired {
        /// The token's `exp`.
        exp: i64,
    },
    /// `nbf` has not come yet (beyond the leeway).
    #[error("not valid before {nbf} (Unix time)")]
    NotYetValid {
        /// The token's `nbf`.
        nbf: i64,
    },
    /// `iat` is in the future (beyond the leeway).
    #[error("issued in the future, at {iat} (Unix time)")]
    IssuedInFuture {
        /// The token's `iat`.
        iat: i64,
    },
    /// The revocation feed covers this token.
    #[error("revoked: {0}")]
    Revoked(RevocationKind),
    /// The token is bound to a DPoP key (`cnf`) but was presented as a
    /// bearer token, without a proof (RFC 9449 §7.2).
    #[error("the token is bound to a DPoP key; present it with Authorization: DPoP and a DPoP proof")]
    BoundToken,
    /// A token presented with a DPoP proof is not bound to any key.
    #[error("the token is not bound to a DPoP key; present it as a Bearer token")]
    NotBound,
    /// The DPoP proof was refused; every case is `invalid_dpop_proof`.
    #[error(transparent)]
    Proof(#[from] ProofError),
    /// The proof is signed by another key than the token is bound to.
    #[error("the DPoP proof is signed by another key than the token is bound to")]
    KeyMismatch,
    /// The proof's `jti` was seen before: it is a replay.
    #[error("the DPoP proof was used before; make a new proof for each request")]
    ProofReplayed,
    /// Nonces are required and the proof has no current one; the client
    /// should retry with this one (`use_dpop_nonce`, RFC 9449 §9).
    #[error("a DPoP nonce is required; retry with the one in the DPoP-Nonce header")]
    NonceRequired {
        /// The nonce to send back in `DPoP-Nonce`.
        nonce: String,
    },
    /// The replay cache is full of proofs that are still live; try again
    /// shortly (the cache never forgets a live proof to make room).
    #[error("too many DPoP proofs in flight; try again shortly")]
    ReplayCacheFull,
}

impl From<JwsError> for VerifyError {
    fn from(error: JwsError) -> Self {
        match error {
            JwsError::Malformed(reason) => VerifyError::Malformed(reason),
            JwsError::WrongType { found, expected } => VerifyError::WrongType { found, expected },
            JwsError::AlgorithmMismatch { header, key } => VerifyError::AlgorithmMismatch { header, key },
            JwsError::AlgorithmNotAllowed(alg) => VerifyError::AlgorithmNotAllowed(alg),
            JwsError::BadSignature => VerifyError::BadSignature,
            _ => VerifyError::Malformed("refused by the JWS checks"),
        }
    }
}

impl From<TimeError> for VerifyError {
    fn from(error: TimeError) -> Self {
        match error {
            TimeError::Expired { exp } => VerifyError::Expired { exp },
            TimeError::NotYetValid { nbf } => VerifyError::NotYetValid { nbf },
            TimeError::IssuedInFuture { iat } => VerifyError::IssuedInFuture { iat },
        }
    }
}

/// Find the key, take the algorithm from it, check the signature; the
/// decoded payload once it verified.
pub(crate) fn verify_signature(jws: &CompactJws<'_>, keys: &KeySet, allowed: &[Algorithm]) -> Result<Vec<u8>, VerifyError> {
    let key = keys.get(jws.kid()).ok_or_else(|| VerifyError::UnknownKey { kid: jws.kid().to_string() })?;
    Ok(jws.verify(key, allowed)?)
}

/// An access token whose signature verified: its claims, decoded but not
/// yet checked, and the kid of the key that verified it.
pub(crate) struct SignedClaims {
    pub claims: Claims,
    pub kid: String,
}

/// The checks that need the signature, in order: shape, `typ`, the key,
/// `alg`, the signature, and the payload decoded as claims. These are what
/// the verified-token cache spares a token seen before.
pub(crate) fn verify_signed_claims(token: &str, keys: &KeySet, policy: &Policy) -> Result<SignedClaims, VerifyError> {
    let jws = CompactJws::parse(token)?;
    jws.require_type(typ::AT_JWT_TYPES)?;
    let payload = verify_signature(&jws, keys, &policy.algorithms)?;
    let claims: Claims = serde_json::from_slice(&payload).map_err(|e| VerifyError::InvalidClaims(e.to_string()))?;
    Ok(SignedClaims { claims, kid: jws.kid().to_string() })
}

/// The checks made on every call, cached token or not: issuer, audience,
/// time (against `now`), then revocation when the feed is followed.
pub(crate) fn check_claims(
    signed: &SignedClaims,
    policy: &Policy,
    revocations: Option<&RevocationMirror>,
    now: i64,
) -> Result<(), VerifyError> {
    signed.claims.check(policy, now)?;
    match revocations {
        Some(mirror) => mirror.check(&signed.claims, &signed.kid),
        None => Ok(()),
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
    let signed = verify_signed_claims(token, keys, policy)?;
    check_claims(&signed, policy, revocations, now)?;
    Ok(signed.claims)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::revocations::RevocationEntry;
    use base64::Engine;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use serde_json::{Value, json};
    use tessera_jose::KeyPair;

    const NOW: i64 = 1_800_000_000;

    struct Keys {
        ec: KeyPair,
        ed: KeyPair,
        set: KeySet,
    }

    fn b64(bytes: &[u8]) -> String {
        URL_SAFE_NO_PAD.encode(bytes)
    }

    fn keys() -> Keys {
        let pair = |alg| KeyPair::from_pkcs8(alg, &KeyPair::generate_pkcs8(alg).unwrap()).unwrap();
        let (ec, ed) = (pair(Algorithm::ES256), pair(Algorithm::EdDSA));
        let jwks = format!("{{\"keys\":[{},{}]}}", ec.public_jwk_json("ec"), ed.public_jwk_json("ed"));
        let set = KeySet::from_jwks(jwks.as_bytes()).unwrap();
        Keys { ec, ed, set }
    }

    impl Keys {
        /// Sign header and claims with the key `header.kid` names.
        fn sign(&self, header: &Value, claims: &Value) -> String {
            let key = if header["kid"] == "ed" { &self.ed } else { &self.ec };
            tessera_jose::sign_compact(&b64(header.to_string().as_bytes()), claims.to_string().as_bytes(), key)
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
            format!("{good}{}", "A".repeat(CompactJws::MAX_BYTES)),
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
        let by_the_other_key = format!("{input}.{}", b64(&keys.ed.sign(input.as_bytes())));
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
