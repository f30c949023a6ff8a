//! Handing a session to a browser: a one-time code bound to a PKCE
//! challenge (RFC 7636, S256 only).
//!
//! The login backend creates the session with the page's `code_challenge`
//! and gets a code instead of tokens; the page exchanges the code with its
//! `code_verifier` at `/oauth2/token` (`grant_type=authorization_code`,
//! [`crate::grants::authorization_code`]). The
//! code lives a minute, works once, and is stored only as its SHA-256. A
//! second presentation fails and ends the session the first one started:
//! someone else has seen the code. With `dpop_jkt` (RFC 9449 §10) the code
//! is also bound to the page's DPoP key: the exchange must carry a proof
//! by it, so a code that leaks is useless without the key.

use super::NewSession;
use crate::authority::{Authority, Refusal};
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
pub(crate) fn valid_pkce_value(value: &str) -> bool {
    (43..=128).contains(&value.len()) && value.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
}

/// Validate the challenge a session request carries.
pub fn challenge(challenge: Option<&str>, method: Option<&str>) -> Result<Option<String>, Refusal> {
    match (challenge, method) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(Refusal::field("code_challenge", "is required with code_challenge_method")),
        // RFC 7636 §4.3: an absent method means "plain", which is refused.
        (Some(_), None) => Err(Refusal::field("code_challenge_method", "is required and must be \"S256\" (plain is not supported)")),
        (Some(_), Some(method)) if method != "S256" => Err(Refusal::field(
            "code_challenge_method",
            format!("{:?} is not supported; only \"S256\"", method.chars().take(16).collect::<String>()),
        )),
        (Some(challenge), _) if challenge.len() != 43 || !valid_pkce_value(challenge) => {
            Err(Refusal::field("code_challenge", "must be BASE64URL(SHA-256(code_verifier)): 43 characters"))
        }
        (Some(challenge), _) => Ok(Some(challenge.to_string())),
    }
}

pub(crate) fn code_id(code: &str) -> String {
    URL_SAFE_NO_PAD.encode(digest(&SHA256, code.as_bytes()).as_ref())
}

/// Store a new session behind a one-time code.
pub(crate) async fn issue_code(authority: &Authority, session: NewSession, challenge: String) -> Result<IssuedCode, Refusal> {
    let code = format!("{}{}", random_id(), random_id());
    let now = authority.clock.unix();
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
        dpop_jkt: session.jkt,
    };
    authority.store.put_code(&code_id(&code), record).await.map_err(|_| Refusal::StoreUnavailable)?;
    Ok(IssuedCode { code, expires_in: CODE_LIFETIME_SECONDS as u64, session_id: session.sid })
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
