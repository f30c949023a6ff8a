//! The claims of an access token (RFC 9068 §2.2): what they are, how they
//! are read (a visitor of their own: serde's `flatten` would buffer every
//! claim before sorting the custom ones out, and a duplicate claim is
//! refused), and how they are written (member by member, as serde_json
//! writes them).

use crate::json::Object;
use serde::{Deserialize, Serialize};
use tessera_jose::Audience;

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

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    pub const ISSUER: &str = "https://issuer.example";

    /// Claims of every kind (a custom one too), issued at `now`.
    pub fn claims(now: i64) -> AccessClaims {
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
}
