//! The claims of a verified access token (RFC 9068 §2.2) and the checks on
//! them that need no key: issuer, audience and time.
//!
//! [`Claims`] is what `verify` hands a service: the registered claims as
//! typed fields, everything else (tessera's custom claims) in `extra`. `aud`
//! may be a string or an array on the wire (RFC 7519 §4.1.3); here it is
//! always a list. The time check is tessera-jose's, the one the server
//! makes on its own tokens.

use super::token::{Policy, VerifyError};
use serde::{Deserialize, Deserializer};
use tessera_jose::{Audience, TimeClaims};

/// The claims of an access token that passed every check.
///
/// Non-exhaustive: a later version may add a claim as a field.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[non_exhaustive]
pub struct Claims {
    /// The issuer, identical to the configured one.
    pub iss: String,
    /// The subject: the person or service the token speaks for.
    pub sub: String,
    /// The audiences, always a list here (one string on the wire becomes one
    /// member); at least one is this service's.
    #[serde(deserialize_with = "one_or_many")]
    pub aud: Vec<String>,
    /// Expiration time (Unix seconds).
    pub exp: i64,
    /// Issued at (Unix seconds).
    pub iat: i64,
    /// Not before (Unix seconds), when the token has one.
    #[serde(default)]
    pub nbf: Option<i64>,
    /// The token's unique id.
    pub jti: String,
    /// The OAuth client the token was issued to.
    pub client_id: String,
    /// Space-delimited (RFC 8693 §4.2); see [`Claims::scopes`].
    #[serde(default)]
    pub scope: Option<String>,
    /// The tessera session the token belongs to.
    #[serde(default)]
    pub sid: Option<String>,
    /// When the person authenticated (Unix seconds), when known.
    #[serde(default)]
    pub auth_time: Option<i64>,
    /// The key the token is bound to (RFC 9449 §6), when it is: such a
    /// token passes only with a DPoP proof by that key.
    #[serde(default)]
    pub cnf: Option<Confirmation>,
    /// Every other claim: the custom claims the login backend asked for.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// The confirmation claim (RFC 7800 §3.1) of a sender-constrained token.
///
/// Non-exhaustive: a later version may read another confirmation method.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[non_exhaustive]
pub struct Confirmation {
    /// The RFC 7638 thumbprint of the DPoP key (RFC 9449 §6.1).
    #[serde(default)]
    pub jkt: Option<String>,
}

impl Claims {
    /// The thumbprint of the key the token is bound to. A `cnf` without
    /// `jkt` binds the token by a method this library cannot check, so it
    /// counts as bound to a key no proof can match.
    pub(crate) fn bound_key(&self) -> Option<&str> {
        self.cnf.as_ref().map(|cnf| cnf.jkt.as_deref().unwrap_or(""))
    }

    /// The granted scopes, one by one.
    pub fn scopes(&self) -> impl Iterator<Item = &str> {
        self.scope.as_deref().unwrap_or_default().split(' ').filter(|s| !s.is_empty())
    }

    /// Whether `scope` is one of the granted scopes (exact match).
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes().any(|granted| granted == scope)
    }

    /// `iss`, `aud`, then `exp`, `nbf` and `iat` against `now` (Unix
    /// seconds) with the policy's leeway.
    pub(crate) fn check(&self, policy: &Policy, now: i64) -> Result<(), VerifyError> {
        if self.iss != policy.issuer {
            return Err(VerifyError::WrongIssuer { iss: self.iss.clone(), expected: policy.issuer.clone() });
        }
        if !self.aud.iter().any(|aud| policy.audiences.contains(aud)) {
            return Err(VerifyError::WrongAudience { aud: self.aud.clone(), expected: policy.audiences.clone() });
        }
        // The server's check on its own tokens is this same one.
        Ok(TimeClaims { exp: self.exp, nbf: self.nbf, iat: Some(self.iat) }.check(now, policy.leeway_seconds)?)
    }
}

fn one_or_many<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<String>, D::Error> {
    Audience::deserialize(deserializer).map(Vec::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tessera_jose::Algorithm;

    const NOW: i64 = 1_800_000_000;

    fn policy(leeway_seconds: i64) -> Policy {
        Policy {
            issuer: "https://issuer.test".into(),
            audiences: vec!["orders-api".into(), "billing-api".into()],
            leeway_seconds,
            algorithms: Algorithm::ALL.to_vec(),
        }
    }

    fn claims(overrides: serde_json::Value) -> Claims {
        let mut base = json!({
            "iss": "https://issuer.test", "sub": "alice", "aud": "orders-api", "exp": NOW + 600, "iat": NOW,
            "jti": "j1", "client_id": "web", "scope": "orders:read  orders:write", "sid": "s1", "tenant": "acme"
        });
        base.as_object_mut().unwrap().extend(overrides.as_object().unwrap().clone());
        serde_json::from_value(base).unwrap()
    }

    #[test]
    fn registered_claims_are_fields_and_the_rest_is_extra() {
        let claims = claims(json!({"aud": ["billing-api", "orders-api"]}));
        assert_eq!(claims.aud, ["billing-api", "orders-api"]);
        assert_eq!(claims.sid.as_deref(), Some("s1"));
        assert_eq!(claims.extra.len(), 1);
        assert_eq!(claims.extra["tenant"], "acme");
        assert_eq!(claims.scopes().collect::<Vec<_>>(), ["orders:read", "orders:write"]);
        assert!(claims.has_scope("orders:write"));
        assert!(!claims.has_scope("orders"));
    }

    #[test]
    fn missing_jti_or_client_id_is_not_an_access_token() {
        for missing in ["jti", "client_id", "exp"] {
            let mut value = json!({"iss": "i", "sub": "s", "aud": "a", "exp": 1, "iat": 1, "jti": "j", "client_id": "c"});
            value.as_object_mut().unwrap().remove(missing);
            assert!(serde_json::from_value::<Claims>(value).is_err(), "{missing}");
        }
    }

    #[test]
    fn issuer_and_audience_must_match() {
        assert_eq!(claims(json!({})).check(&policy(0), NOW), Ok(()));
        assert_eq!(claims(json!({"aud": ["x", "billing-api"]})).check(&policy(0), NOW), Ok(()));
        let wrong_issuer = claims(json!({"iss": "https://issuer.test/"})).check(&policy(0), NOW);
        assert!(matches!(wrong_issuer, Err(VerifyError::WrongIssuer { .. })), "{wrong_issuer:?}");
        let wrong_audience = claims(json!({"aud": ["x", "y"]})).check(&policy(0), NOW);
        assert!(matches!(wrong_audience, Err(VerifyError::WrongAudience { .. })), "{wrong_audience:?}");
    }

    #[test]
    fn time_checks_honour_the_leeway() {
        let expired = claims(json!({"exp": NOW}));
        assert_eq!(expired.check(&policy(0), NOW), Err(VerifyError::Expired { exp: NOW }));
        assert_eq!(expired.check(&policy(1), NOW), Ok(()));
        let early = claims(json!({"nbf": NOW + 10}));
        assert_eq!(early.check(&policy(9), NOW), Err(VerifyError::NotYetValid { nbf: NOW + 10 }));
        assert_eq!(early.check(&policy(10), NOW), Ok(()));
        let future = claims(json!({"iat": NOW + 10}));
        assert_eq!(future.check(&policy(9), NOW), Err(VerifyError::IssuedInFuture { iat: NOW + 10 }));
        assert_eq!(future.check(&policy(10), NOW), Ok(()));
    }
}
