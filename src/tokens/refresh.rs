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
use crate::json::{Object, Reader};
use crate::keys::{KeyView, MacKey};
use base64::Engine;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tessera_jose::base64url;

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

impl RefreshClaims {
    /// The claims as JSON: exactly the bytes `serde_json::to_vec` writes
    /// (the tests compare), written member by member.
    fn to_json(&self) -> Vec<u8> {
        let mut object = Object::with_capacity(384);
        object.string("iss", &self.iss);
        object.string("jti", &self.jti);
        object.string("sid", &self.sid);
        object.string("sub", &self.sub);
        object.string("client_id", &self.client_id);
        object.number("generation", self.generation);
        object.optional_string("scope", self.scope.as_deref());
        object.audience("aud", &self.aud);
        if !self.custom.is_empty() {
            object.value("custom", &self.custom);
        }
        object.number("iat", self.iat);
        object.number("exp", self.exp);
        object.number("session_exp", self.session_exp);
        object.optional_number("auth_time", self.auth_time);
        object.optional_string("jkt", self.jkt.as_deref());
        object.finish()
    }

    /// Claims read from JSON, as [`open`] reads them once the MAC checks.
    /// What tessera wrote (no custom claims, nothing escaped) is read
    /// member by member; anything else by serde_json, so the result is
    /// always serde_json's (a fuzz target holds the two to it).
    pub fn from_json(json: &[u8]) -> Result<Self, serde_json::Error> {
        Self::from_own_json(json).map_or_else(|| serde_json::from_slice(json), Ok)
    }

    /// The claims, if `json` is laid out exactly as [`Self::to_json`]
    /// writes them without custom claims.
    fn from_own_json(json: &[u8]) -> Option<Self> {
        let mut reader = Reader::object(json)?;
        let iss = reader.string("iss")?;
        let jti = reader.string("jti")?;
        let sid = reader.string("sid")?;
        let sub = reader.string("sub")?;
        let client_id = reader.string("client_id")?;
        let generation = u32::try_from(reader.integer("generation")?).ok()?;
        let scope = reader.optional_string("scope")?;
        let aud = reader.audience("aud")?;
        let iat = reader.integer("iat")?;
        let exp = reader.integer("exp")?;
        let session_exp = reader.integer("session_exp")?;
        let auth_time = reader.optional_integer("auth_time")?;
        let jkt = reader.optional_string("jkt")?;
        reader.end()?;
        let custom = serde_json::Map::new();
        Some(Self { iss, jti, sid, sub, client_id, generation, scope, aud, custom, iat, exp, session_exp, auth_time, jkt })
    }
}

/// Seal claims under the MAC key.
pub fn seal(key: &MacKey, claims: &RefreshClaims) -> String {
    let payload = claims.to_json();
    let mut out = Vec::with_capacity(payload.len() * 4 / 3 + key.kid.len() + 52);
    out.extend_from_slice(PREFIX.as_bytes());
    out.push(b'.');
    out.extend_from_slice(key.kid.as_bytes());
    out.push(b'.');
    base64url::append(&mut out, &payload);
    let tag = key.tag(&out);
    out.push(b'.');
    base64url::append(&mut out, tag.as_ref());
    base64url::into_string(out)
}

/// Check the MAC (with an active or retired MAC key) and parse the claims.
/// Expiry and revocation are the caller's decisions.
pub fn open(token: &str, keys: &KeyView, now: DateTime<Utc>) -> Result<RefreshClaims, RefreshTokenError> {
    if token.len() > 16 * 1024 {
        return Err(RefreshTokenError::Malformed);
    }
    // Exactly four parts: three dots, found in one pass.
    let mut dots = memchr::memchr_iter(b'.', token.as_bytes());
    let (Some(first), Some(second), Some(third), None) = (dots.next(), dots.next(), dots.next(), dots.next()) else {
        return Err(RefreshTokenError::Malformed);
    };
    let (prefix, kid, payload, tag) = (&token[..first], &token[first + 1..second], &token[second + 1..third], &token[third + 1..]);
    if prefix != PREFIX {
        return Err(RefreshTokenError::Malformed);
    }
    // A tag longer than any MAC tessera makes cannot be one of its own.
    let mut tag_bytes = [0u8; 64];
    let tag_len = match base64url::ENGINE.decode_slice(tag, &mut tag_bytes) {
        Ok(len) => len,
        Err(base64::DecodeSliceError::OutputSliceTooSmall) => return Err(RefreshTokenError::BadMac),
        Err(base64::DecodeSliceError::DecodeError(_)) => return Err(RefreshTokenError::Malformed),
    };
    let key = keys.mac_for_check(kid, now).ok_or(RefreshTokenError::BadMac)?;
    if !key.verify(&token.as_bytes()[..third], &tag_bytes[..tag_len]) {
        return Err(RefreshTokenError::BadMac);
    }
    let payload = base64url::decode(payload).map_err(|_| RefreshTokenError::Malformed)?;
    RefreshClaims::from_json(&payload).map_err(|_| RefreshTokenError::Malformed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::keys::{KeyDirectory, Keyring, TokenLifetimes};
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
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
        // The parts: exactly four, the tag base64url of a MAC's length.
        let (signed, tag) = token.rsplit_once('.').unwrap();
        assert_eq!(open(&format!("{token}.x"), &view, clock.now()), Err(RefreshTokenError::Malformed), "a fifth part");
        assert_eq!(open(&format!("rt2{}", &token[3..]), &view, clock.now()), Err(RefreshTokenError::Malformed), "another prefix");
        let short = URL_SAFE_NO_PAD.encode([0u8; 31]);
        assert_eq!(open(&format!("{signed}.{short}"), &view, clock.now()), Err(RefreshTokenError::BadMac), "a shorter tag");
        assert_eq!(open(&format!("{signed}.{tag}{tag}{tag}"), &view, clock.now()), Err(RefreshTokenError::BadMac), "a tag too long");
        assert_eq!(open(&format!("{signed}.{tag}!"), &view, clock.now()), Err(RefreshTokenError::Malformed), "not base64url");
        assert_eq!(open(&format!("{signed}."), &view, clock.now()), Err(RefreshTokenError::BadMac), "an empty tag");
    }

    fn from_serde_json(json: &[u8]) -> Option<RefreshClaims> {
        serde_json::from_slice(json).ok()
    }

    proptest::proptest! {
        /// The claims are written byte for byte as serde_json writes them,
        /// and read back as serde_json reads them: member by member when
        /// tessera wrote them, by serde_json when there are custom claims or
        /// escapes.
        #[test]
        fn claims_are_written_and_read_exactly_as_serde_json_does(
            text in "\\PC{0,24}|[\\x00-\\x7f]{0,24}",
            numbers: (i64, i64, Option<i64>, u32),
            present: (bool, bool, bool, bool),
            many in proptest::collection::vec("[a-z\"]{0,8}", 0..4),
        ) {
            let mut custom = serde_json::Map::new();
            if present.0 {
                custom.insert("tenant".into(), serde_json::json!([numbers.0, text]));
            }
            let written = RefreshClaims {
                iss: text.clone(),
                jti: "j".into(),
                sid: format!("{text}-sid"),
                sub: text.clone(),
                client_id: "web".into(),
                generation: numbers.3,
                scope: present.1.then(|| text.clone()),
                aud: if present.2 { Audience::One(text.clone()) } else { Audience::Many(many) },
                custom,
                iat: numbers.0,
                exp: numbers.1,
                session_exp: numbers.0.wrapping_add(numbers.1),
                auth_time: numbers.2,
                jkt: present.3.then(|| text.clone()),
            };
            let json = written.to_json();
            proptest::prop_assert_eq!(&json, &serde_json::to_vec(&written).unwrap());
            proptest::prop_assert_eq!(RefreshClaims::from_json(&json).unwrap(), written.clone());
            let plain = !present.0 && !String::from_utf8_lossy(&json).contains('\\');
            proptest::prop_assert_eq!(RefreshClaims::from_own_json(&json).is_some(), plain);
        }

        /// Whatever the bytes, reading them gives what serde_json gives.
        #[test]
        fn any_json_is_read_as_serde_json_reads_it(edit in 0usize..400, byte: u8) {
            let json = claims().to_json();
            let mut edited = json.clone();
            let at = edit % edited.len();
            if edit < edited.len() { edited[at] = byte } else { edited.insert(at, byte) }
            proptest::prop_assert_eq!(RefreshClaims::from_json(&edited).ok(), from_serde_json(&edited));
        }
    }

    #[test]
    fn claims_in_another_layout_are_read_by_serde_json() {
        let json = String::from_utf8(claims().to_json()).unwrap();
        for other in [
            json.replacen("{", "{ ", 1),
            json.replacen(r#""generation":0"#, r#""generation":0.0"#, 1),
            json.replacen(r#""generation":0"#, r#""generation":4294967296"#, 1),
            json.replacen(r#""scope":"read""#, r#""scope":null"#, 1),
            json.replacen(r#""iss":"https://issuer.example","jti":"j""#, r#""jti":"j","iss":"https://issuer.example""#, 1),
            json.replacen(r#""sub":"alice""#, r#""sub":"al\u0069ce""#, 1),
            json.replacen(r#""iat":1"#, r#""iat":1,"unknown":1"#, 1),
            json.replacen(r#""iat":1"#, r#""iat":1,"iat":1"#, 1),
            json.replacen(r#","sid""#, r#""sid""#, 1),
            format!("{json}\n"),
        ] {
            assert_eq!(RefreshClaims::from_own_json(other.as_bytes()), None, "{other}");
            assert_eq!(RefreshClaims::from_json(other.as_bytes()).ok(), from_serde_json(other.as_bytes()), "{other}");
        }
    }
}
