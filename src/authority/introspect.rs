//! RFC 7662 introspection: is this token active, and what does it say?
//! Honours every kind of revocation entry and the configured leeway; a
//! consumed refresh token is no longer active. A DPoP-bound token shows
//! its key as `cnf.jkt` (RFC 9449 §6.2). Access tokens verified once are
//! answered from [`super::verified`] after that, with revocation, time and
//! key trust still checked on every call.

use super::verified::{Verified, VerifiedTokens};
use super::{Authority, Refusal};
use crate::json::Object;
use crate::keys::{KeyState, KeyView};
use crate::revocations::TokenFacts;
use crate::tokens::access::{self, Audience, Confirmation};
use crate::tokens::refresh;
use chrono::{DateTime, Utc};
use serde::Serialize;
use std::sync::Arc;
use tessera_jose::TimeClaims;

/// The introspection response; only `active` when the token is not.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Introspection {
    pub active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sub: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exp: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iat: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub aud: Option<Audience>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub jti: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
    /// RFC 7662 `token_type`: `Bearer` for access tokens (`DPoP` for one
    /// bound to a key, RFC 9449 §6.2), `refresh_token` otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_type: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// RFC 9449 §6.2: the DPoP key a bound token is bound to.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cnf: Option<Confirmation>,
}

impl Introspection {
    pub fn inactive() -> Self {
        Self::default()
    }

    /// The response body: exactly what serde_json writes for this value,
    /// member by member (a resource server may introspect the same token
    /// many times, and the answer is mostly its identifiers).
    pub fn to_json(&self) -> Vec<u8> {
        if !self.active {
            return INACTIVE.to_vec();
        }
        let mut body = Object::with_capacity(512);
        body.bool("active", true);
        body.optional_string("scope", self.scope.as_deref());
        body.optional_string("client_id", self.client_id.as_deref());
        body.optional_string("sub", self.sub.as_deref());
        body.optional_number("exp", self.exp);
        body.optional_number("iat", self.iat);
        body.optional_string("iss", self.iss.as_deref());
        if let Some(aud) = &self.aud {
            body.audience("aud", aud);
        }
        body.optional_string("jti", self.jti.as_deref());
        body.optional_string("sid", self.sid.as_deref());
        body.optional_string("token_type", self.token_type);
        body.optional_number("auth_time", self.auth_time);
        if let Some(cnf) = &self.cnf {
            body.object("cnf", &[("jkt", &cnf.jkt)]);
        }
        body.finish()
    }
}

/// What introspection found, before it is written out.
enum Found {
    Inactive,
    Refresh(Box<refresh::RefreshClaims>),
    Access(Arc<Verified>),
}

impl Introspection {
    /// An active refresh token's answer.
    fn of_refresh(claims: refresh::RefreshClaims) -> Self {
        Self {
            active: true,
            scope: claims.scope,
            client_id: Some(claims.client_id),
            sub: Some(claims.sub),
            exp: Some(claims.exp.min(claims.session_exp)),
            iat: Some(claims.iat),
            iss: Some(claims.iss),
            aud: Some(claims.aud),
            jti: Some(claims.jti),
            sid: Some(claims.sid),
            token_type: Some("refresh_token"),
            auth_time: claims.auth_time,
            cnf: claims.jkt.map(|jkt| Confirmation { jkt }),
        }
    }

    /// An active access token's answer.
    fn of_access(claims: &access::AccessClaims) -> Self {
        Self {
            active: true,
            scope: claims.scope.clone(),
            client_id: Some(claims.client_id.clone()),
            sub: Some(claims.sub.clone()),
            exp: Some(claims.exp),
            iat: Some(claims.iat),
            iss: Some(claims.iss.clone()),
            aud: Some(claims.aud.clone()),
            jti: Some(claims.jti.clone()),
            sid: claims.sid.clone(),
            token_type: Some(crate::tokens::issue::token_type(claims)),
            auth_time: claims.auth_time,
            cnf: claims.cnf.clone(),
        }
    }
}

/// The answer for every token that is not active (RFC 7662 §2.2).
const INACTIVE: &[u8] = br#"{"active":false}"#;

impl Authority {
    /// Introspect `token`: what the endpoint answers, as a value.
    pub async fn introspect(&self, token: &str) -> Result<Introspection, Refusal> {
        Ok(match self.find(token).await? {
            Found::Inactive => Introspection::inactive(),
            Found::Refresh(claims) => Introspection::of_refresh(*claims),
            Found::Access(verified) => Introspection::of_access(&verified.claims),
        })
    }

    /// Introspect `token`: the endpoint's response body, the JSON of
    /// [`Self::introspect`]. An access token found in the cache of verified
    /// tokens answers with the body written when it first verified.
    pub async fn introspection_body(&self, token: &str) -> Result<bytes::Bytes, Refusal> {
        Ok(match self.find(token).await? {
            Found::Inactive => bytes::Bytes::from_static(INACTIVE),
            Found::Refresh(claims) => Introspection::of_refresh(*claims).to_json().into(),
            Found::Access(verified) => verified.answer.clone(),
        })
    }

    async fn find(&self, token: &str) -> Result<Found, Refusal> {
        // Answer from the in-memory list only while it is known to be current.
        self.require_fresh_revocations()?;
        let now = self.clock.now();
        let view = self.keyring.view();
        let leeway = self.policy.leeway.as_secs() as i64;
        if token.starts_with("rt1.") {
            let Ok(claims) = refresh::open(token, &view, now) else { return Ok(Found::Inactive) };
            let now_s = now.timestamp();
            if claims.iss != *self.issuer || now_s >= claims.exp.min(claims.session_exp).saturating_add(leeway) {
                return Ok(Found::Inactive);
            }
            if self
                .revocations
                .check(TokenFacts { jti: Some(&claims.jti), sid: Some(&claims.sid), sub: &claims.sub, iat: claims.iat, kid: None })
                .is_some()
            {
                return Ok(Found::Inactive);
            }
            // A consumed refresh token cannot be used again (a retry inside
            // the grace window gets its child, not a new one).
            if self.store.consumed_refresh(&claims.sid, &claims.jti).await.map_err(|_| Refusal::StoreUnavailable)?.is_some() {
                return Ok(Found::Inactive);
            }
            return Ok(Found::Refresh(Box::new(claims)));
        }
        let Some(verified) = self.verified_access_token(token, &view, leeway, now) else { return Ok(Found::Inactive) };
        let Verified { claims, kid, .. } = verified.as_ref();
        let facts = TokenFacts { jti: Some(&claims.jti), sid: claims.sid.as_deref(), sub: &claims.sub, iat: claims.iat, kid: Some(kid) };
        if self.revocations.check(facts).is_some() {
            return Ok(Found::Inactive);
        }
        Ok(Found::Access(verified))
    }

    /// An access token's claims if it verifies now — from the cache of
    /// verified tokens when it is there, its key still trusted and its time
    /// claims still good, else by verifying it (and caching it if it
    /// passes). Revocation is the caller's check, every time.
    fn verified_access_token(&self, token: &str, view: &KeyView, leeway: i64, now: DateTime<Utc>) -> Option<Arc<Verified>> {
        let digest = VerifiedTokens::digest(token);
        if let Some(hit) = self.verified.get(&digest) {
            let trusted = view.signing_key(&hit.kid, now).is_some_and(|(_, state)| matches!(state, KeyState::Active | KeyState::Retired));
            let timely =
                TimeClaims { exp: hit.claims.exp, nbf: hit.claims.nbf, iat: Some(hit.claims.iat) }.check(now.timestamp(), leeway).is_ok();
            if trusted && timely {
                self.metrics.introspection_cache(true);
                return Some(hit);
            }
            self.verified.remove(&digest);
            return None;
        }
        self.metrics.introspection_cache(false);
        let (claims, kid) = access::check(token, view, &self.issuer, leeway, now).ok()?;
        let answer = Introspection::of_access(&claims).to_json().into();
        let verified = Arc::new(Verified { claims, kid, answer });
        self.verified.insert(digest, verified.clone(), now.timestamp().saturating_sub(leeway));
        Some(verified)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every shape the response takes is written exactly as serde_json
    /// writes it: absent members, one and many audiences, a key binding,
    /// strings to escape, numbers at the ends of their range.
    #[test]
    fn the_response_is_what_serde_json_writes() {
        let full = Introspection {
            active: true,
            scope: Some("openid read:all".into()),
            client_id: Some("svc".into()),
            sub: Some("alice".into()),
            exp: Some(1_900_000_000),
            iat: Some(1_800_000_000),
            iss: Some("https://issuer.test".into()),
            aud: Some(Audience::One("https://api.test".into())),
            jti: Some("j-1".into()),
            sid: Some("s-1".into()),
            token_type: Some("DPoP"),
            auth_time: Some(1_799_999_999),
            cnf: Some(Confirmation { jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into() }),
        };
        let odd = Introspection {
            scope: None,
            sub: Some("quote\" back\\slash \u{1} new\nline é 😀 \u{7f}".into()),
            exp: Some(i64::MIN),
            iat: Some(i64::MAX),
            aud: Some(Audience::Many(vec!["a".into(), "b\"c".into()])),
            sid: None,
            token_type: Some("refresh_token"),
            auth_time: None,
            cnf: None,
            ..full.clone()
        };
        let bare = Introspection { active: true, ..Introspection::default() };
        let inactive_with_leftovers = Introspection { active: false, ..full.clone() };
        for value in [full, odd, bare, Introspection::inactive()] {
            assert_eq!(String::from_utf8(value.to_json()).unwrap(), serde_json::to_string(&value).unwrap());
        }
        // An inactive answer says nothing else (RFC 7662 §2.2), whatever the value holds.
        assert_eq!(inactive_with_leftovers.to_json(), INACTIVE);
    }

    /// The body is the value written out, for every kind of token and
    /// whether or not an access token's answer comes from the cache.
    #[tokio::test]
    async fn the_body_is_the_introspection_written_out_first_time_and_repeated() {
        let dir = tempfile::tempdir().unwrap();
        let app = crate::authority::test_app(dir.path(), crate::config::StoreConfig::Memory).await;
        let authority = app.state().authority.clone();
        let now = authority.clock.now();
        let view = authority.keyring.view();
        let claims = access::AccessClaims {
            iss: authority.issuer.to_string(),
            sub: "alice \"quoted\"".into(),
            aud: Audience::Many(vec!["https://a.test".into(), "https://b.test".into()]),
            exp: now.timestamp() + 300,
            nbf: None,
            iat: now.timestamp(),
            jti: "jti-1".into(),
            client_id: "svc".into(),
            scope: Some("read write".into()),
            sid: Some("sid-1".into()),
            auth_time: Some(now.timestamp() - 5),
            cnf: Some(Confirmation { jkt: "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into() }),
            custom: serde_json::Map::new(),
        };
        let access_token = access::mint(view.active_signer(now).unwrap(), &claims);
        let refresh_claims = refresh::RefreshClaims {
            iss: authority.issuer.to_string(),
            jti: "rt-1".into(),
            sid: "sid-2".into(),
            sub: "bob".into(),
            client_id: "web".into(),
            generation: 0,
            scope: None,
            aud: Audience::One("https://a.test".into()),
            custom: Default::default(),
            iat: now.timestamp(),
            exp: now.timestamp() + 3_600,
            session_exp: now.timestamp() + 86_400,
            auth_time: None,
            jkt: None,
        };
        let refresh_token = refresh::seal(view.active_mac(now).unwrap(), &refresh_claims);
        for (token, active) in [(access_token.as_str(), true), (&access_token, true), (&refresh_token, true), ("not-a-token", false)] {
            let value = authority.introspect(token).await.unwrap();
            assert_eq!(value.active, active, "{token}");
            let body = authority.introspection_body(token).await.unwrap();
            assert_eq!(body, value.to_json(), "{token}");
        }
        assert_eq!(authority.verified.len(), 1, "the access token was answered from the cache after its first time");
        let repeated: serde_json::Value = serde_json::from_slice(&authority.introspection_body(&access_token).await.unwrap()).unwrap();
        assert_eq!(repeated["cnf"]["jkt"], "0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I");
        assert_eq!(repeated["token_type"], "DPoP");
        assert_eq!(repeated["sub"], "alice \"quoted\"");
    }
}
