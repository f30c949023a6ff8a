//! Refresh tokens: opaque to every client, MAC-protected, self-contained.
//!
//! ```text
//! rt1.<mac kid>.<base64url(JSON claims)>.<base64url(HMAC-SHA256 over "rt1.<kid>.<claims>")>
//! ```
//!
//! The token carries everything needed to mint the next pair (subject,
//! client, session, generation, scope, audience, custom claims, both
//! expiries), so tessera needs no session table. It is not a JWS: nothing
//! that trusts the JWKS can mistake it for an access token, and its MAC key
//! is never published. The MAC key id lets the key rotate like signing keys.

use super::access::Audience;
use crate::keys::{KeyView, MacKey};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

const PREFIX: &str = "rt1";

/// What a refresh token says.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RefreshClaims {
    pub iss: String,
    pub jti: String,
    pub sid: String,
    pub sub: String,
    pub client_id: String,
    /// 0 for the token issued with the session, +1 per rotation.
    pub generation: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scope: Option<String>,
    pub aud: Audience,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub custom: serde_json::Map<String, serde_json::Value>,
    pub iat: i64,
    /// Idle expiry: this token is dead after it.
    pub exp: i64,
    /// Absolute expiry of the session (never extended by rotation).
    pub session_exp: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_time: Option<i64>,
    /// The DPoP key (RFC 7638 thumbprint) a public client's refresh token
    /// is bound to: refreshing needs a proof by it (RFC 9449 §5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jkt: Option<String>,
}

/// Why a presented refresh token was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RefreshTokenError {
    #[error("the refresh token is malformed")]
    Malformed,
    #[error("the refresh token was not issued by this service or was altered")]
    BadMac,
}

/// Seal claims under the MAC key.
pub fn seal(key: &MacKey, claims: &RefreshClaims) -> String {
    let payload = serde_json::to_vec(claims).expect("claims serialize");
    let mut out = String::with_capacity(payload.len() * 4 / 3 + 80);
    out.push_str(PREFIX);
    out.push('.');
    out.push_str(&key.kid);
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(&payload, &mut out);
    let tag = key.tag(out.as_bytes());
    out.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut out);
    out
}

/// Check the MAC (with an active or retired MAC key) and parse the claims.
/// Expiry and revocation are the caller's decisions.
pub fn open(token: &str, keys: &KeyView, now: DateTime<Utc>) -> Result<RefreshClaims, RefreshTokenError> {
    if token.len() > 16 * 1024 {
        return Err(RefreshTokenError::Malformed);
    }
    let mut parts = token.split('.');
    let (Some(prefix), Some(kid), Some(payload), Some(tag), None) = (parts.next(), parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(RefreshTokenError::Malformed);
    };
    if prefix != PREFIX {
        return Err(RefreshTokenError::Malformed);
    }
    let tag = URL_SAFE_NO_PAD.decode(tag).map_err(|_| RefreshTokenError::Malformed)?;
    let key = keys.mac_for_check(kid, now).ok_or(RefreshTokenError::BadMac)?;
    let signed = &token[..token.len() - token.rsplit('.').next().map_or(0, str::len) - 1];
    if !key.verify(signed.as_bytes(), &tag) {
        return Err(RefreshTokenError::BadMac);
    }
    let payload = URL_SAFE_NO_PAD.decode(payload).map_err(|_| RefreshTokenError::Malformed)?;
    serde_json::from_slice(&payload).map_err(|_| RefreshTokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keys::{KeyDirectory, Keyring, TokenLifetimes};
    use std::sync::Arc;
    use std::time::Duration;

    fn claims() -> RefreshClaims {
        RefreshClaims {
            iss: "https://issuer.example".into(),
            jti: "j".into(),
            sid: "s".into(),
            sub: "alice".into(),
            client_id: "web".into(),
            generation: 0,
            scope: Some("read".into()),
            aud: Audience::One("api".into()),
            custom: Default::default(),
            iat: 1,
            exp: 2,
            session_exp: 3,
            auth_time: None,
            jkt: Some("0ZcOCORZNYy-DWpqq30jZyJGHTN0d2HglBV3uiguA4I".into()),
        }
    }

    #[test]
    fn sealed_tokens_open_and_tampering_is_caught() {
        let dir = tempfile::tempdir().unwrap();
        let clock = Arc::new(ManualClock::at_unix(1_700_000_000));
        let directory = KeyDirectory::new(dir.path());
        directory.generate_mac(clock.now(), clock.now()).unwrap();
        let lifetimes = TokenLifetimes { access: Duration::from_secs(600), refresh: Duration::from_secs(86_400) };
        let keyring = Keyring::open(directory, lifetimes, clock.clone()).unwrap();
        let view = keyring.view();
        let key = view.active_mac(clock.now()).unwrap();

        let token = seal(key, &claims());
        assert!(!token.starts_with("ey"), "must not look like a JWS");
        assert_eq!(open(&token, &view, clock.now()).unwrap(), claims());

        let mut forged = claims();
        forged.sub = "mallory".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}.{}", parts[0], parts[1], forged_payload, parts[3]);
        assert_eq!(open(&tampered, &view, clock.now()), Err(RefreshTokenError::BadMac));
        assert_eq!(open("rt1.x.y", &view, clock.now()), Err(RefreshTokenError::Malformed));
        assert_eq!(open(&token.replacen(&key.kid, "mac-unknown", 1), &view, clock.now()), Err(RefreshTokenError::BadMac));
    }
}
