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

use crate::json::Object;
use crate::keys::{KeyState, KeyView, SigningKey};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_jose::{CompactJws, JwsError, TimeClaims, TimeError, typ};

pub use tessera_jose::Audience;

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

/// The claims of an access token, in RFC 9068 terms. Read with a
/// deserializer of its own (below): serde's `flatten` would buffer every
/// claim before sorting the custom ones out.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AccessClaims {
    pub iss: String,
    pub sub: String,
    pub aud: Audience,
    pub exp: i64,
    /// Not before (RFC 7519 §4.1.5). tessera never sets it, but honours it
    /// when checking.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iat: i64,
    pub jti: String,
    pub client_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// RFC 9449 §6: the DPoP key the token is bound to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
    /// The caller's custom claims (never a reserved name).
    #[serde(flatten)]
    pub custom: serde_json::Map<String, serde_json::Value>,
}

impl<'de> Deserialize<'de> for AccessClaims {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(ClaimsVisitor)
    }
}

struct ClaimsVisitor;

impl<'de> serde::de::Visitor<'de> for ClaimsVisitor {
    type Value = AccessClaims;

    fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
        formatter.write_str("a JSON object of access-token claims")
    }

    /// Each claim at most once (RFC 7519 §4: a JWT with a duplicate claim
    /// name is refused, not read as one of its copies).
    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<AccessClaims, A::Error> {
        use serde::de::Error;
        fn once<T, E: Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
            match slot.replace(value) {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        let (mut iss, mut sub, mut aud, mut exp, mut nbf, mut iat, mut jti) = (None, None, None, None, None, None, None);
        let (mut client_id, mut scope, mut sid, mut auth_time, mut cnf) = (None, None, None, None, None);
        let mut custom = serde_json::Map::new();
        while let Some(name) = map.next_key::<std::borrow::Cow<'de, str>>()? {
            match name.as_ref() {
                "iss" => once(&mut iss, map.next_value::<String>()?, "iss")?,
                "sub" => once(&mut sub, map.next_value::<String>()?, "sub")?,
                "aud" => once(&mut aud, map.next_value::<Audience>()?, "aud")?,
                "exp" => once(&mut exp, map.next_value::<i64>()?, "exp")?,
                "nbf" => once(&mut nbf, map.next_value::<Option<i64>>()?, "nbf")?,
                "iat" => once(&mut iat, map.next_value::<i64>()?, "iat")?,
                "jti" => once(&mut jti, map.next_value::<String>()?, "jti")?,
                "client_id" => once(&mut client_id, map.next_value::<String>()?, "client_id")?,
                "scope" => once(&mut scope, map.next_value::<Option<String>>()?, "scope")?,
                "sid" => once(&mut sid, map.next_value::<Option<String>>()?, "sid")?,
                "auth_time" => once(&mut auth_time, map.next_value::<Option<i64>>()?, "auth_time")?,
                "cnf" => once(&mut cnf, map.next_value::<Option<Confirmation>>()?, "cnf")?,
                _ => {
                    let value = map.next_value::<serde_json::Value>()?;
                    if custom.insert(name.clone().into_owned(), value).is_some() {
                        return Err(A::Error::custom(format!("duplicate claim {:?}", name.chars().take(64).collect::<String>())));
                    }
                }
            }
        }
        Ok(AccessClaims {
            iss: iss.ok_or_else(|| A::Error::missing_field("iss"))?,
            sub: sub.ok_or_else(|| A::Error::missing_field("sub"))?,
            aud: aud.ok_or_else(|| A::Error::missing_field("aud"))?,
            exp: exp.ok_or_else(|| A::Error::missing_field("exp"))?,
            nbf: nbf.flatten(),
            iat: iat.ok_or_else(|| A::Error::missing_field("iat"))?,
            jti: jti.ok_or_else(|| A::Error::missing_field("jti"))?,
            client_id: client_id.ok_or_else(|| A::Error::missing_field("client_id"))?,
            scope: scope.flatten(),
            sid: sid.flatten(),
            auth_time: auth_time.flatten(),
            cnf: cnf.flatten(),
            custom,
        })
    }
}

/// The confirmation claim (RFC 7800 §3.1) of a DPoP-bound token: the
/// RFC 7638 thumbprint of the client's key (RFC 9449 §6.1).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confirmation {
    pub jkt: String,
}

impl AccessClaims {
    /// The claims as JSON: exactly the bytes `serde_json::to_vec` writes
    /// (the tests compare), written member by member.
    pub fn to_json(&self) -> Vec<u8> {
        let mut object = Object::with_capacity(512);
        object.string("iss", &self.iss);
        object.string("sub", &self.sub);
        object.audience("aud", &self.aud);
        object.number("exp", self.exp);
        object.optional_number("nbf", self.nbf);
        object.number("iat", self.iat);
        object.string("jti", &self.jti);
        object.string("client_id", &self.client_id);
        object.optional_string("scope", self.scope.as_deref());
        object.optional_string("sid", self.sid.as_deref());
        object.optional_number("auth_time", self.auth_time);
        if let Some(cnf) = &self.cnf {
            object.object("cnf", &[("jkt", &cnf.jkt)]);
        }
        object.members(&self.custom);
        object.finish()
    }
}

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
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keys::{KeyDirectory, Keyring, SigningAlgorithm, TokenLifetimes};
    use jsonwebtoken::{DecodingKey, Validation};
    use std::sync::Arc;
    use std::time::Duration;

    const ISSUER: &str = "https://issuer.example";

    fn claims(now: i64) -> AccessClaims {
        let mut custom = serde_json::Map::new();
        custom.insert("tenant".into(), "acme".into());
        AccessClaims {
            iss: ISSUER.into(),
            sub: "alice".into(),
            aud: Audience::One("orders-api".into()),
            exp: now + 600,
            nbf: None,
            iat: now,
            jti: "j1".into(),
            client_id: "web".into(),
            scope: Some("read".into()),
            sid: Some("s1".into()),
            auth_time: Some(now),
            cnf: None,
            custom,
        }
    }

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
    fn claims_read_back_as_written_and_duplicates_are_refused() {
        let written = claims(1_700_000_000);
        let json = serde_json::to_string(&written).unwrap();
        assert_eq!(serde_json::from_str::<AccessClaims>(&json).unwrap(), written);
        let with = |extra: &str| format!("{}{extra}}}", &json[..json.len() - 1]);
        for duplicate in [r#","sub":"mallory""#, r#","tenant":"other""#, r#","exp":1"#] {
            assert!(serde_json::from_str::<AccessClaims>(&with(duplicate)).is_err(), "{duplicate}");
        }
        let nulls = with(r#","nbf":null,"extra":[1,{"a":null}]"#);
        let read: AccessClaims = serde_json::from_str(&nulls).unwrap();
        assert_eq!(read.nbf, None);
        assert_eq!(read.custom["extra"], serde_json::json!([1, {"a": null}]));
        let missing = json.replace(r#""client_id":"#, r#""not_client_id":"#);
        assert!(serde_json::from_str::<AccessClaims>(&missing).unwrap_err().to_string().contains("client_id"));
    }

    proptest::proptest! {
        /// The claims are written byte for byte as serde_json writes them,
        /// whatever their strings hold.
        #[test]
        fn claims_are_written_exactly_as_serde_json_writes_them(
            text in "\\PC{0,24}|[\\x00-\\x7f]{0,24}",
            numbers: (i64, Option<i64>, Option<i64>),
            present: (bool, bool, bool, bool),
            many in proptest::collection::vec("\\PC{0,8}", 0..4),
        ) {
            let mut custom = serde_json::Map::new();
            if present.0 {
                custom.insert(text.clone(), serde_json::json!({"n": numbers.0, "s": text}));
            }
            let claims = AccessClaims {
                iss: text.clone(),
                sub: format!("{text}-sub"),
                aud: if present.1 { Audience::One(text.clone()) } else { Audience::Many(many) },
                exp: numbers.0,
                nbf: numbers.1,
                iat: numbers.0.wrapping_neg(),
                jti: "j".into(),
                client_id: text.clone(),
                scope: present.2.then(|| text.clone()),
                sid: present.3.then(|| "s".into()),
                auth_time: numbers.2,
                cnf: present.1.then(|| Confirmation { jkt: text.clone() }),
                custom,
            };
            proptest::prop_assert_eq!(claims.to_json(), serde_json::to_vec(&claims).unwrap());
        }
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
