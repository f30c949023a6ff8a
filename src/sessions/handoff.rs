//! Handing a session to a browser: a one-time code bound to a PKCE
//! challenge (RFC 7636, S256 only).
//!
//! The login backend creates the session with the page's `code_challenge`
//! and gets a code instead of tokens; the page exchanges the code with its
//! `code_verifier` at `/oauth2/token` (`grant_type=authorization_code`). The
//! code lives a minute, works once, and is stored only as its SHA-256. A
//! second presentation fails and ends the session the first one started:
//! someone else has seen the code.

use super::{GrantError, IssuedSession, NewSession, TokenService};
use crate::clients::{Client, constant_time_eq};
use crate::metrics::Grant;
use crate::revocations::TokenFacts;
use crate::revocations::{Covers, Revocation};
use crate::store::HandoffCode;
use crate::tokens::random_id;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::digest::{SHA256, digest};

/// How long a code may be exchanged.
pub const CODE_LIFETIME_SECONDS: i64 = 60;
/// How long a used code is remembered, to recognise a second use.
const CODE_MEMORY_SECONDS: i64 = 3_600;

/// A code handed to the login backend.
#[derive(Debug, Clone, serde::Serialize)]
pub struct IssuedCode {
    pub code: String,
    pub expires_in: u64,
    pub session_id: String,
}

/// RFC 7636 §4.1: 43 to 128 unreserved characters.
fn valid_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Validate the challenge a session request carries.
pub fn challenge(challenge: Option<&str>, method: Option<&str>) -> Result<Option<String>, GrantError> {
    match (challenge, method) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(GrantError::field("code_challenge", "is required with code_challenge_method")),
        // RFC 7636 §4.3: an absent method means "plain", which is refused.
        (Some(_), None) => Err(GrantError::field("code_challenge_method", "is required and must be \"S256\" (plain is not supported)")),
        (Some(_), Some(method)) if method != "S256" => Err(GrantError::field(
            "code_challenge_method",
            format!("{:?} is not supported; only \"S256\"", method.chars().take(16).collect::<String>()),
        )),
        (Some(challenge), _) if challenge.len() != 43 || !valid_pkce_value(challenge) => {
            Err(GrantError::field("code_challenge", "must be BASE64URL(SHA-256(code_verifier)): 43 characters"))
        }
        (Some(challenge), _) => Ok(Some(challenge.to_string())),
    }
}

fn code_id(code: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, code.as_bytes()).as_ref())
}

impl TokenService {
    /// Store a new session behind a one-time code.
    pub(crate) async fn issue_code(&self, session: NewSession, challenge: String) -> Result<IssuedCode, GrantError> {
        let code = format!("{}{}", random_id(), random_id());
        let now = self.clock.unix();
        let record = HandoffCode {
            sid: session.sid.clone(),
            sub: session.sub,
            client_id: session.client_id,
            scope: session.scope,
            aud: session.aud,
            custom: session.custom,
            auth_time: session.auth_time,
            session_exp: session.session_exp,
            code_challenge: challenge,
            use_by: now + CODE_LIFETIME_SECONDS,
            redeemed: false,
            expires_at: now + CODE_MEMORY_SECONDS,
        };
        self.store.put_code(&code_id(&code), record).await.map_err(|_| GrantError::StoreUnavailable)?;
        Ok(IssuedCode { code, expires_in: CODE_LIFETIME_SECONDS as u64, session_id: session.sid })
    }

    /// `grant_type=authorization_code`: exchange a code and its verifier for
    /// the session's first pair.
    pub async fn exchange_code(&self, client: &Client, code: &str, verifier: Option<&str>) -> Result<IssuedSession, GrantError> {
        self.require_fresh_revocations()?;
        let verifier = verifier.ok_or_else(|| GrantError::field("code_verifier", "is required (RFC 7636)"))?;
        if code.len() > 256 {
            return Err(GrantError::InvalidGrant("the code is not valid".into()));
        }
        let record = self.store.redeem_code(&code_id(code)).await.map_err(|_| GrantError::StoreUnavailable)?;
        let Some(record) = record else { return Err(GrantError::InvalidGrant("the code is not valid or has expired".into())) };
        if record.redeemed {
            tracing::warn!(security_event = "handoff_code_reuse", sid = %record.sid, client = %client.id, "a one-time code was presented twice; its session is ended");
            self.record(vec![Revocation::new(Covers::Session { sid: record.sid.clone() }, record.session_exp)]).await?;
            return Err(GrantError::InvalidGrant("the code was already used; the session it started has been ended".into()));
        }
        if record.client_id != client.id {
            return Err(GrantError::InvalidGrant("the code was issued to another client".into()));
        }
        if self.clock.unix() > record.use_by {
            return Err(GrantError::InvalidGrant("the code has expired".into()));
        }
        // Logout or logout-everywhere between the code and its exchange.
        let facts = TokenFacts { jti: None, sid: Some(&record.sid), sub: &record.sub, iat: record.auth_time, kid: None };
        if let Some(revoked) = self.revocations.check(facts) {
            return Err(GrantError::InvalidGrant(revoked.describe().to_string()));
        }
        let computed = URL_SAFE_NO_PAD.encode(digest(&SHA256, verifier.as_bytes()).as_ref());
        if !valid_pkce_value(verifier) || !constant_time_eq(computed.as_bytes(), record.code_challenge.as_bytes()) {
            return Err(GrantError::InvalidGrant("the code_verifier does not match the code_challenge".into()));
        }
        let session = NewSession {
            sid: record.sid,
            sub: record.sub,
            client_id: record.client_id,
            aud: record.aud,
            scope: record.scope,
            custom: record.custom,
            auth_time: record.auth_time,
            session_exp: record.session_exp,
        };
        self.metrics.issued(Grant::Session);
        self.mint_first_pair(&session, client)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_s256_challenges_of_the_right_shape_are_accepted() {
        let good = URL_SAFE_NO_PAD.encode(digest(&SHA256, b"a-verifier-of-at-least-forty-three-characters-long").as_ref());
        assert_eq!(challenge(Some(&good), Some("S256")).unwrap().as_deref(), Some(good.as_str()));
        assert!(challenge(Some(&good), None).is_err(), "an absent method means plain");
        assert!(challenge(Some(&good), Some("plain")).is_err());
        assert!(challenge(Some("short"), Some("S256")).is_err());
        assert!(challenge(None, Some("S256")).is_err());
        assert_eq!(challenge(None, None).unwrap(), None);
    }
}
