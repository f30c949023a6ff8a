//! Token responses (RFC 6749 §5.1) as JSON bytes, written member by
//! member with [`crate::json::Object`]: a token response is mostly its
//! tokens, a kilobyte of base64url and dots that needs no escaping. The
//! bytes are exactly what `serde_json::to_vec` writes for the same value
//! (the tests compare them).

use crate::json::Object;
use crate::tokens::issue::{IssuedAccessToken, IssuedSession};

/// `{"access_token":…,"token_type":…,"expires_in":…,"refresh_token":…,"refresh_expires_in":…,"session_id":…,"scope":…}`,
/// without `refresh_token` or `scope` when there is none.
pub fn session(issued: &IssuedSession) -> Vec<u8> {
    let size = issued.access_token.len() + issued.refresh_token.as_ref().map_or(0, String::len) + 256;
    let mut body = Object::with_capacity(size);
    body.string("access_token", &issued.access_token);
    body.string("token_type", issued.token_type);
    body.number("expires_in", issued.expires_in);
    body.optional_string("refresh_token", issued.refresh_token.as_deref());
    body.number("refresh_expires_in", issued.refresh_expires_in);
    body.string("session_id", &issued.session_id);
    body.optional_string("scope", issued.scope.as_deref());
    body.finish()
}

/// `{"access_token":…,"token_type":…,"expires_in":…,"scope":…}`, without
/// `scope` when there is none.
pub fn access_token(issued: &IssuedAccessToken) -> Vec<u8> {
    let mut body = Object::with_capacity(issued.access_token.len() + 128);
    body.string("access_token", &issued.access_token);
    body.string("token_type", issued.token_type);
    body.number("expires_in", issued.expires_in);
    body.optional_string("scope", issued.scope.as_deref());
    body.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sessions() -> Vec<IssuedSession> {
        let plain = IssuedSession {
            access_token: "eyJhbGciOiJFUzI1NiJ9.eyJzdWIiOiJhIn0.c2ln-_".into(),
            token_type: "Bearer",
            expires_in: 300,
            refresh_token: Some("rt1.mac-x.eyJ9.dGFn".into()),
            refresh_expires_in: 1_209_600,
            session_id: "s-1_Z".into(),
            scope: Some("openid read:all".into()),
        };
        let odd = IssuedSession {
            token_type: "DPoP",
            expires_in: 0,
            refresh_token: None,
            refresh_expires_in: u64::MAX,
            session_id: "quote\" back\\slash \u{1} new\nline é 😀 \u{7f}".into(),
            scope: None,
            ..plain.clone()
        };
        vec![plain, odd]
    }

    #[test]
    fn sessions_are_written_exactly_as_serde_json_writes_them() {
        for issued in sessions() {
            assert_eq!(String::from_utf8(session(&issued)).unwrap(), serde_json::to_string(&issued).unwrap());
        }
    }

    #[test]
    fn access_tokens_are_written_exactly_as_serde_json_writes_them() {
        for issued in sessions() {
            let token = IssuedAccessToken {
                access_token: issued.session_id.clone(),
                token_type: issued.token_type,
                expires_in: issued.refresh_expires_in,
                scope: issued.scope.clone(),
            };
            assert_eq!(String::from_utf8(access_token(&token)).unwrap(), serde_json::to_string(&token).unwrap());
        }
    }

    proptest::proptest! {
        #[test]
        fn any_string_is_written_as_serde_json_writes_it(text in "\\PC*|[\\x00-\\x7f]{0,40}", number: u64) {
            let issued = IssuedAccessToken { access_token: text.clone(), token_type: "Bearer", expires_in: number, scope: Some(text) };
            proptest::prop_assert_eq!(access_token(&issued), serde_json::to_vec(&issued).unwrap());
        }
    }
}
