//! RFC 9068 access tokens: `typ: at+jwt`, signed by the keyring's active key.
//!
//! Minting signs with the keyring's cached ring key pair directly instead of
//! going through `jsonwebtoken::encode`, whose provider interface hands the
//! signer raw key bytes on every call. The header is encoded once per key;
//! per token only the claims are serialized, encoded and signed. The bench
//! `benches/issue.rs` holds this path to within 1.5× of ring's raw sign.

use crate::keys::{KeyState, KeyView, SigningKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// Claim names a caller may not set through custom claims: the registered
/// JWT claims, those RFC 9068 and OpenID Connect give meaning to, and the
/// ones tessera sets itself.
pub const RESERVED_CLAIMS: &[&str] = &[
    "iss",
    "sub",
    "aud",
    "exp",
    "nbf",
    "iat",
    "jti",
    "client_id",
    "scope",
    "sid",
    "auth_time",
    "acr",
    "amr",
    "azp",
    "cnf",
    "act",
    "may_act",
    "nonce",
    "typ",
    "token_type",
    "at_hash",
    "c_hash",
    "s_hash",
    "sub_jwk",
    "events",
    "toe",
    "txn",
    "gen",
];

/// `aud`: a single string when there is one audience (RFC 7519 §4.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Audience {
    One(String),
    Many(Vec<String>),
}

impl Audience {
    pub fn from_list(mut list: Vec<String>) -> Self {
        if list.len() == 1 { Audience::One(list.remove(0)) } else { Audience::Many(list) }
    }
}

/// The claims of an access token, in RFC 9068 terms.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The caller's custom claims (never a reserved name).
    #[serde(flatten)]
    pub custom: serde_json::Map<String, serde_json::Value>,
}

/// Sign claims into a compact JWS with the key's access-token header.
pub fn mint(key: &SigningKey, claims: &AccessClaims) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    compact_jws(key, key.access_token_header(), &payload)
}

/// `header.payload.signature` with base64url parts.
pub fn compact_jws(key: &SigningKey, header_b64: &str, payload: &[u8]) -> String {
    let mut out = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 140);
    out.push_str(header_b64);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(payload, &mut out);
    let signature = key.sign(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(signature, &mut out);
    out
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
    #[error("issued in the future")]
    NotYetValid,
}

#[derive(Deserialize)]
struct Header {
    alg: String,
    kid: String,
    #[serde(default)]
    typ: Option<String>,
    /// RFC 7515 §4.1.11: extensions we do not implement must be refused.
    #[serde(default)]
    crit: Option<serde::de::IgnoredAny>,
}

/// Check a token this service issued: format, `typ`, the key (active or
/// retired, never one the token names an algorithm for), signature, issuer
/// and time with `leeway` seconds. Returns the claims and the signing kid.
/// Revocation is the caller's check.
pub fn check(
    token: &str,
    keys: &KeyView,
    issuer: &str,
    leeway: i64,
    now: DateTime<Utc>,
) -> Result<(AccessClaims, String), AccessTokenError> {
    use AccessTokenError as E;
    if token.len() > 16 * 1024 {
        return Err(E::Malformed);
    }
    let (signed, signature) = token.rsplit_once('.').ok_or(E::Malformed)?;
    let (header, payload) = signed.split_once('.').ok_or(E::Malformed)?;
    let header: Header = URL_SAFE_NO_PAD.decode(header).ok().and_then(|h| serde_json::from_slice(&h).ok()).ok_or(E::Malformed)?;
    if header.crit.is_some() {
        return Err(E::Malformed);
    }
    // RFC 9068 §4: typ "at+jwt" or its full media type.
    let typ = header.typ.as_deref().map(str::to_ascii_lowercase);
    if !matches!(typ.as_deref(), Some("at+jwt" | "application/at+jwt")) {
        return Err(E::WrongType);
    }
    let (key, state) = keys.signing_key(&header.kid, now).ok_or(E::UnknownKey)?;
    if !matches!(state, KeyState::Active | KeyState::Retired) {
        return Err(E::UnknownKey);
    }
    if header.alg != key.alg.as_str() {
        return Err(E::WrongAlgorithm);
    }
    let signature = URL_SAFE_NO_PAD.decode(signature).map_err(|_| E::Malformed)?;
    if !key.verify(signed.as_bytes(), &signature) {
        return Err(E::BadSignature);
    }
    let claims: AccessClaims = URL_SAFE_NO_PAD.decode(payload).ok().and_then(|p| serde_json::from_slice(&p).ok()).ok_or(E::Malformed)?;
    if claims.iss != issuer {
        return Err(E::WrongIssuer);
    }
    let now = now.timestamp();
    if now >= claims.exp.saturating_add(leeway) {
        return Err(E::Expired);
    }
    if claims.iat > now.saturating_add(leeway) {
        return Err(E::NotYetValid);
    }
    Ok((claims, header.kid))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningAlgorithm;
    use jsonwebtoken::{DecodingKey, Validation};

    #[test]
    fn minted_token_verifies_with_jsonwebtoken_and_has_rfc9068_header() {
        crate::keys::provider::install();
        let key = SigningKey::from_pkcs8(SigningAlgorithm::ES256, &SigningKey::generate(SigningAlgorithm::ES256).unwrap()).unwrap();
        let mut custom = serde_json::Map::new();
        custom.insert("tenant".into(), "acme".into());
        let now = chrono::Utc::now().timestamp();
        let claims = AccessClaims {
            iss: "https://issuer.example".into(),
            sub: "alice".into(),
            aud: Audience::One("orders-api".into()),
            exp: now + 600,
            iat: now,
            jti: "j1".into(),
            client_id: "web".into(),
            scope: Some("read".into()),
            sid: Some("s1".into()),
            auth_time: Some(now),
            custom,
        };
        let token = mint(&key, &claims);
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.typ.as_deref(), Some("at+jwt"));
        assert_eq!(header.kid.as_deref(), Some(key.kid.as_str()));

        let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&key.public_jwk_json()).unwrap();
        let mut validation = Validation::new(jsonwebtoken::Algorithm::ES256);
        validation.set_audience(&["orders-api"]);
        validation.set_issuer(&["https://issuer.example"]);
        let decoded = jsonwebtoken::decode::<AccessClaims>(&token, &DecodingKey::from_jwk(&jwk).unwrap(), &validation).unwrap();
        assert_eq!(decoded.claims, claims);
    }
}
