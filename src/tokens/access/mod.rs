//! RFC 9068 access tokens: `typ: at+jwt`, signed by the keyring's active key.
//!
//! Minting signs with the keyring's cached ring key pair through
//! tessera-jose's compact-JWS writer. The header is encoded once per key;
//! per token only the claims are serialized, encoded and signed. The bench
//! `benches/issue.rs` holds this path to within 1.5× of ring's raw sign.
//!
//! Checking reads the token with tessera-jose too, and its time check is
//! the one the verifier library makes, so introspection, revocation,
//! `token inspect` and every offline verifier agree on `exp`, `nbf` and
//! `iat`.

mod claims;

pub use claims::{AccessClaims, Confirmation, RESERVED_CLAIMS};
pub use tessera_jose::Audience;

use crate::keys::{KeyState, KeyView, SigningKey};
use chrono::{DateTime, Utc};
use tessera_jose::{CompactJws, JwsError, TimeClaims, TimeError, typ};

/// Sign claims into a compact JWS with the key's access-token header.
/// Exported traces (`otel`) show the signing as a span of its own; the
/// default build does not open one for every token, as no line is logged
/// inside it.
pub fn mint(key: &SigningKey, claims: &AccessClaims) -> String {
    #[cfg(feature = "otel")]
    let _span = tracing::info_span!("sign", kid = %key.kid).entered();
    compact_jws(key, key.access_token_header(), &claims.to_json())
}

/// `header.payload.signature` with base64url parts.
pub fn compact_jws(key: &SigningKey, header_b64: &str, payload: &[u8]) -> String {
    tessera_jose::sign_compact(header_b64, payload, key)
}

/// Why an access token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AccessTokenError {
    #[error("not a compact JWS")]
    Malformed,
    #[error("typ is not at+jwt")]
    WrongType,
    #[error("signed by a key this service does not hold")]
    UnknownKey,
    #[error("the header alg does not match the key")]
    WrongAlgorithm,
    #[error("the signature does not verify")]
    BadSignature,
    #[error("issued by another issuer")]
    WrongIssuer,
    #[error("expired")]
    Expired,
    #[error("not valid yet (nbf is in the future)")]
    NotYetValid,
    #[error("issued in the future")]
    IssuedInFuture,
}

impl From<JwsError> for AccessTokenError {
    fn from(error: JwsError) -> Self {
        match error {
            JwsError::WrongType { .. } => Self::WrongType,
            JwsError::AlgorithmMismatch { .. } | JwsError::AlgorithmNotAllowed(_) => Self::WrongAlgorithm,
            JwsError::BadSignature => Self::BadSignature,
            _ => Self::Malformed,
        }
    }
}

impl From<TimeError> for AccessTokenError {
    fn from(error: TimeError) -> Self {
        match error {
            TimeError::Expired { .. } => Self::Expired,
            TimeError::NotYetValid { .. } => Self::NotYetValid,
            TimeError::IssuedInFuture { .. } => Self::IssuedInFuture,
        }
    }
}

/// Check a token this service issued: format, `typ`, the key (active or
/// retired, never one the token names an algorithm for), signature, issuer
/// and time (`exp`, `nbf`, `iat`) with `leeway` seconds. Returns the claims
/// and the signing kid. Revocation is the caller's check.
pub fn check(
    token: &str,
    keys: &KeyView,
    issuer: &str,
    leeway: i64,
    now: DateTime<Utc>,
) -> Result<(AccessClaims, String), AccessTokenError> {
    use AccessTokenError as E;
    let jws = CompactJws::parse(token)?;
    // RFC 9068 §4: typ "at+jwt" or its full media type.
    jws.require_type(typ::AT_JWT_TYPES)?;
    let (key, state) = keys.signing_key(jws.kid(), now).ok_or(E::UnknownKey)?;
    if !matches!(state, KeyState::Active | KeyState::Retired) {
        return Err(E::UnknownKey);
    }
    let payload = jws.verify(key.public_key(), &[key.alg])?;
    let claims: AccessClaims = serde_json::from_slice(&payload).map_err(|_| E::Malformed)?;
    if claims.iss != issuer {
        return Err(E::WrongIssuer);
    }
    TimeClaims { exp: claims.exp, nbf: claims.nbf, iat: Some(claims.iat) }.check(now.timestamp(), leeway)?;
    Ok((claims, jws.kid().to_string()))
}

#[cfg(test)]
mod tests {
    use super::claims::tests::{ISSUER, claims};
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keys::{KeyDirectory, Keyring, SigningAlgorithm, TokenLifetimes};
    use jsonwebtoken::{DecodingKey, Validation};
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn minted_tokens_verify_with_jsonwebtoken_and_have_the_rfc9068_header() {
        tessera_jose::jsonwebtoken_provider::install();
        for alg in SigningAlgorithm::ALL {
            let key = SigningKey::from_pkcs8(alg, &SigningKey::generate(alg).unwrap()).unwrap();
            let claims = claims(chrono::Utc::now().timestamp());
            let token = mint(&key, &claims);
            let header = jsonwebtoken::decode_header(&token).unwrap();
            assert_eq!(header.typ.as_deref(), Some("at+jwt"));
            assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));

            let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&key.public_jwk_json()).unwrap();
            let mut validation = Validation::new(alg.into());
            validation.set_audience(&["orders-api"]);
            validation.set_issuer(&[ISSUER]);
            let decoded = jsonwebtoken::decode::<AccessClaims>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation)
                .unwrap_or_else(|e| panic!("{alg}: {e}"));
            assert_eq!(decoded.claims, claims, "{alg}");
        }
    }

    /// A keyring with one active ES256 key, at a manual clock.
    fn keyring() -> (Keyring, Arc<ManualClock>, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at_unix(1_800_000_000));
        let directory = KeyDirectory::new(dir.path());
        directory.generate_signing(SigningAlgorithm::ES256, clock.now(), clock.now()).unwrap();
        let lifetimes = TokenLifetimes { access: Duration::from_secs(600), refresh: Duration::from_secs(600) };
        (Keyring::open(directory, lifetimes, clock.clone()).unwrap(), clock, dir)
    }

    #[test]
    fn check_refuses_a_future_nbf_apart_from_a_future_iat() {
        let (keyring, clock, _dir) = keyring();
        let view = keyring.view();
        let now = clock.now();
        let key = view.active_signer(now).unwrap();
        let check = |claims: &AccessClaims| check(&mint(key, claims), &view, ISSUER, 30, now).map(|(claims, _)| claims);
        let base = claims(now.timestamp());
        assert_eq!(check(&base).unwrap(), base);
        let within_leeway = AccessClaims { nbf: Some(now.timestamp() + 30), ..base.clone() };
        assert_eq!(check(&within_leeway).unwrap().nbf, Some(now.timestamp() + 30));
        let in_an_hour = AccessClaims { nbf: Some(now.timestamp() + 3600), ..base.clone() };
        assert_eq!(check(&in_an_hour).unwrap_err(), AccessTokenError::NotYetValid);
        let issued_later = AccessClaims { iat: now.timestamp() + 31, ..base.clone() };
        assert_eq!(check(&issued_later).unwrap_err(), AccessTokenError::IssuedInFuture);
        let expired = AccessClaims { exp: now.timestamp() - 30, ..base.clone() };
        assert_eq!(check(&expired).unwrap_err(), AccessTokenError::Expired);
        let written: serde_json::Value = serde_json::to_value(&base).unwrap();
        assert!(written.get("nbf").is_none(), "tessera never writes nbf: {written}");
    }

    #[test]
    fn check_refuses_wrong_type_unknown_keys_and_tampering() {
        let (keyring, clock, _dir) = keyring();
        let view = keyring.view();
        let now = clock.now();
        let key = view.active_signer(now).unwrap();
        let token = mint(key, &claims(now.timestamp()));
        assert!(check(&token, &view, ISSUER, 0, now).is_ok());
        assert_eq!(check(&token, &view, "https://other.example", 0, now).unwrap_err(), AccessTokenError::WrongIssuer);
        let plain_jwt = compact_jws(key, &tessera_jose::Header::new(key.alg, key.kid.as_str(), "JWT").encode(), b"{}");
        assert_eq!(check(&plain_jwt, &view, ISSUER, 0, now).unwrap_err(), AccessTokenError::WrongType);
        let other = SigningKey::from_pkcs8(SigningAlgorithm::ES256, &SigningKey::generate(SigningAlgorithm::ES256).unwrap()).unwrap();
        assert_eq!(check(&mint(&other, &claims(now.timestamp())), &view, ISSUER, 0, now).unwrap_err(), AccessTokenError::UnknownKey);
        let (input, _) = token.rsplit_once('.').unwrap();
        let by_other = mint(&other, &claims(now.timestamp()));
        let foreign_signature = by_other.rsplit_once('.').unwrap().1;
        assert_eq!(check(&format!("{input}.{foreign_signature}"), &view, ISSUER, 0, now).unwrap_err(), AccessTokenError::BadSignature);
        assert_eq!(check("a.b", &view, ISSUER, 0, now).unwrap_err(), AccessTokenError::Malformed);
    }
}
